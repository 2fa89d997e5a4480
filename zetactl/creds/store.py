"""The controller's credential records: sealed envelopes per generation and node, never a value.

    $ZETACTL_HOME/creds/NAME/credential.json   name, generation, envelope format, target, per-host node id + digest
    $ZETACTL_HOME/creds/NAME/GEN/HOST.age      the envelope sealed to HOST's pinned host key

The envelopes are ciphertext the controller cannot open, so the record says which format they were sealed
in (`format`; a record without one was written before format 2, with v1 envelopes): a v1 credential is
refused until resealed (`Record.check_envelope_format`).

Files are 0600 in 0700 directories and written with temp file + rename.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zetactl.creds.areas import areas, check_path
from zetactl.creds.envelope import VERSION, check_name, make_header, seal
from zetactl.errors import BadInput
from zetactl.fileio import write_atomic
from zetactl.inventory import Host
from zetactl.paths import state_dir
from zetactl.secret import Secret


def creds_dir() -> Path:
    return state_dir() / "creds"


@dataclass
class Target:
    path: str
    mode: str = "0400"
    owner: str = "root"
    group: str = "root"
    units: tuple[str, ...] = ()


@dataclass
class Record:
    name: str
    generation: int
    target: Target
    not_after: int
    created: int
    hosts: dict[str, dict[str, Any]] = field(default_factory=dict)  # host -> {node, digest, areas}
    state: str = "complete"  # "pending" while a rotation has not reached every host
    format: int = VERSION  # the envelope format of this generation (1: sealed by zetactl before format 2)

    def check_envelope_format(self) -> None:
        """Refuse a credential whose envelopes are in another format (v1: their headers are not bound)."""
        if self.format > VERSION:
            raise BadInput(f"credential {self.name!r} generation {self.generation} was sealed by a newer zetactl "
                           f"(envelope format v{self.format}; this one writes v{VERSION}): upgrade zetactl")
        if self.format != VERSION:
            raise BadInput(f"credential {self.name!r} generation {self.generation} was sealed by an older zetactl "
                           f"(envelope format v{self.format}, whose header is not bound to its digest): reseal it "
                           f"with `zetactl creds rotate {self.name} --from-file FILE` (the value is needed again: "
                           "the controller keeps none)")

    @property
    def dir(self) -> Path:
        return creds_dir() / self.name

    def envelope_path(self, host: str, generation: int | None = None) -> Path:
        return self.dir / str(generation or self.generation) / f"{host}.age"

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "generation": self.generation, "state": self.state, "format": self.format,
                "target": {"path": self.target.path, "mode": self.target.mode, "owner": self.target.owner,
                           "group": self.target.group, "units": list(self.target.units)},
                "not_after": self.not_after, "created": self.created, "hosts": self.hosts}


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    for directory in (creds_dir(), *[p for p in path.parents if creds_dir() in p.parents]):
        directory.chmod(0o700)  # mkdir's mode applies to the last folder only
    write_atomic(path, data, 0o600)


def load(name: str) -> Record:
    path = creds_dir() / check_name(name) / "credential.json"
    if not path.is_file():
        raise BadInput(f"no credential named {name!r} (seal it first: zetactl creds seal {name} --hosts PATTERN)")
    data = json.loads(path.read_text())
    target = data["target"]
    return Record(name=data["name"], generation=int(data["generation"]),
                  target=Target(target["path"], target["mode"], target["owner"], target["group"],
                                tuple(target["units"])),
                  not_after=int(data["not_after"]), created=int(data["created"]), hosts=data["hosts"],
                  state=data.get("state", "complete"), format=int(data.get("format", 1)))


def names() -> list[str]:
    root = creds_dir()
    return sorted(p.name for p in root.iterdir() if (p / "credential.json").is_file()) if root.is_dir() else []


def save(record: Record) -> None:
    _write(record.dir / "credential.json", (json.dumps(record.to_json(), indent=1) + "\n").encode())


def host_key(host: Host) -> str:
    """The host's pinned ssh-ed25519 key line (the recipient its envelopes are sealed to)."""
    from zetactl.transport.known_hosts import pinned_keys  # loads the SSH stack: only when sealing

    for key_type, key in pinned_keys(host.known_hosts, host):
        if key_type == "ssh-ed25519":
            return f"{key_type} {key}"
    raise BadInput(f"{host.name}: no pinned ssh-ed25519 host key in {host.known_hosts} (age seals to ed25519 keys)")


def node_id(host: Host) -> str:
    return str(host.vars.get("zeta_node_id") or host.name)


def seal_for_hosts(name: str, value: Secret, hosts: list[Host], target: Target, *, not_after: int,
                   recovery: tuple[str, ...] = (), previous: Record | None = None, min_generation: int = 1,
                   tokens: bool = False) -> Record:
    """Seal a new generation of NAME to each host (at least `min_generation`: above what a node already holds);
    the record becomes `pending` until pushed. The path must lie in every host's credential areas (`tokens`: a
    tenant's hub token, only for `zetactl tenant`)."""
    check_path(target.path, hosts, tokens=tokens)
    generation = max((previous.generation + 1) if previous else 1, min_generation)
    record = Record(name=name, generation=generation, target=target, not_after=not_after,
                    created=int(time.time()), state="pending")
    for host in hosts:
        header = make_header(node_id(host), name, generation, value, not_after=not_after, path=target.path,
                             mode=target.mode, owner=target.owner, group=target.group, units=target.units)
        _write(record.envelope_path(host.name), seal(header, value, [host_key(host), *recovery]))
        # the host's areas when sealed: the node refuses a path outside them whatever envelope it is given
        record.hosts[host.name] = {"node": header.node, "digest": header.digest, "areas": list(areas(host))}
    save(record)
    return record
