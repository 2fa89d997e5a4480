"""The pinned known_hosts file: read what is pinned for a host, pin a new key after checking it."""

from __future__ import annotations

import os
from pathlib import Path

import asyncssh

from zetactl.errors import ZetaError
from zetactl.inventory import Host
from zetactl.transport import fingerprint, offered_key


def host_patterns(host: Host) -> set[str]:
    return {host.address} if host.port == 22 else {f"[{host.address}]:{host.port}"}


def pin(known_hosts: Path, host: Host, key: asyncssh.SSHKey) -> None:
    """Replace every entry for this host with `key`, atomically; other hosts' lines are kept."""
    patterns = host_patterns(host)
    lines = known_hosts.read_text().splitlines() if known_hosts.exists() else []
    kept = [ln for ln in lines if not (ln.split() and set(ln.split()[0].split(",")) & patterns)]
    entry = f"{','.join(sorted(patterns))} {key.export_public_key('openssh').decode().split()[0]} " \
            f"{key.export_public_key('openssh').decode().split()[1]}"
    known_hosts.parent.mkdir(parents=True, exist_ok=True)
    tmp = known_hosts.with_name(known_hosts.name + ".tmp")
    tmp.write_text("\n".join([*kept, entry]) + "\n")
    os.replace(tmp, known_hosts)


async def trust(host: Host, expected: str) -> str:
    """Pin the host's key if (and only if) it has the fingerprint the operator checked out of band."""
    key = await offered_key(host)
    seen = fingerprint(key)
    if seen != expected:
        raise ZetaError(f"{host.name} offers {seen}, not {expected}: nothing was pinned")
    pin(host.known_hosts, host, key)
    return seen
