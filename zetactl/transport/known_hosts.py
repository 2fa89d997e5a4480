"""The pinned known_hosts file: which lines are a host's, is it pinned, pin a new key atomically."""

from __future__ import annotations

import os
from pathlib import Path

import asyncssh

from zetactl.inventory import Host


def host_patterns(host: Host) -> set[str]:
    """How OpenSSH names this host in known_hosts (port 22 bare, others as [address]:port)."""
    return {host.address} if host.port == 22 else {f"[{host.address}]:{host.port}"}


def _is_entry_for(line: str, patterns: set[str]) -> bool:
    fields = line.split()
    return len(fields) >= 3 and not line.startswith("#") and bool(set(fields[0].split(",")) & patterns)


def is_pinned(known_hosts: Path, host: Host) -> bool:
    """Whether the file has any entry for this host (to tell 'unknown' from 'changed')."""
    if not known_hosts.is_file():
        return False
    patterns = host_patterns(host)
    return any(_is_entry_for(line, patterns) for line in known_hosts.read_text(errors="replace").splitlines())


def pin(known_hosts: Path, host: Host, key: asyncssh.SSHKey) -> None:
    """Replace every entry for this host with `key`, atomically; other hosts' lines are kept."""
    patterns = host_patterns(host)
    lines = known_hosts.read_text().splitlines() if known_hosts.exists() else []
    kept = [line for line in lines if not _is_entry_for(line, patterns)]
    key_type, key_data = key.export_public_key("openssh").decode().split()[:2]
    known_hosts.parent.mkdir(parents=True, exist_ok=True)
    tmp = known_hosts.with_name(known_hosts.name + ".tmp")
    tmp.write_text("\n".join([*kept, f"{','.join(sorted(patterns))} {key_type} {key_data}"]) + "\n")
    os.replace(tmp, known_hosts)
