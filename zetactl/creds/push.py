"""Turn credential records into a playbook of `credential` steps, so pushing them is a deploy.

A push is then an ordinary run: one connection per host, probes batched, only what changed sent,
journaled, resumable, with waves and a failure budget. The playbook is written under
$ZETACTL_HOME/creds/.playbooks/ and names the generations it pushes (so --resume refuses a run
whose records changed since).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

import yaml

from zetactl.creds import store
from zetactl.errors import BadInput


def playbook_for(names: Sequence[str], *, retire: bool = False) -> Path:
    records = [store.load(name) for name in names]
    if not records:
        raise BadInput("no credentials to push (seal one first: zetactl creds seal NAME --hosts PATTERN)")
    for record in records:  # an envelope of an older format is refused before any host is touched
        record.check_envelope_format()
    hosts = sorted({h for r in records for h in r.hosts})
    document = {
        "name": "creds retire" if retire else "creds push",
        "hosts": ":".join(hosts),
        "vars": {"creds_hosts": {r.name: sorted(r.hosts) for r in records}},
        "steps": [
            {"name": f"{'retire old generations of' if retire else 'credential'} {r.name}",
             "credential": {"name": r.name, **({"retire": True} if retire else {})},
             "when": f"inventory_hostname in creds_hosts[{r.name!r}]"}
            for r in records
        ],
    }
    header = "# Written by zetactl creds: " + ", ".join(f"{r.name} generation {r.generation}" for r in records) + "\n"
    text = header + yaml.safe_dump(document, sort_keys=False)
    directory = store.creds_dir() / ".playbooks"
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = directory / f"{'retire' if retire else 'push'}-{hashlib.sha256(text.encode()).hexdigest()[:12]}.yml"
    if not path.exists():
        path.write_text(text)
    return path
