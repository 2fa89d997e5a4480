"""The pinned known_hosts file: which lines are a host's, is it pinned, pin a new key atomically."""

from __future__ import annotations

from pathlib import Path

import asyncssh

from zetactl.fileio import write_atomic
from zetactl.inventory import Host

_LOADED: dict[Path, tuple[tuple[int, int, int], asyncssh.SSHKnownHosts]] = {}


def loaded(known_hosts: Path) -> asyncssh.SSHKnownHosts | None:
    """The pinned file, parsed once for all the connections of a run (None: there is no file).

    asyncssh re-reads and re-parses a known_hosts path on every connection: every key of the fleet for
    every host, which grows with the square of the fleet. The parse is kept while the file is the same
    (inode, size, modification time): a file re-pinned meanwhile (write_atomic: a new inode) is read again.
    """
    try:
        info = known_hosts.stat()
    except FileNotFoundError:
        return None
    identity = (info.st_ino, info.st_size, info.st_mtime_ns)
    cached = _LOADED.get(known_hosts)
    if cached is None or cached[0] != identity:
        cached = (identity, asyncssh.import_known_hosts(known_hosts.read_text(errors="replace")))
        _LOADED[known_hosts] = cached
    return cached[1]


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
    write_atomic(known_hosts, "\n".join([*kept, f"{','.join(sorted(patterns))} {key_type} {key_data}"]) + "\n",
                 0o644)  # public keys, as ssh keeps them


def unpin(known_hosts: Path, host: Host) -> None:
    """Remove every entry for this host, atomically; other hosts' lines are kept."""
    if known_hosts.is_file():
        patterns = host_patterns(host)
        kept = [line for line in known_hosts.read_text().splitlines() if not _is_entry_for(line, patterns)]
        write_atomic(known_hosts, "".join(f"{line}\n" for line in kept), 0o644)


def pinned_keys(known_hosts: Path, host: Host) -> list[tuple[str, str]]:
    """The (key type, base64 key) pairs pinned for this host."""
    if not known_hosts.is_file():
        return []
    patterns = host_patterns(host)
    return [(line.split()[1], line.split()[2]) for line in known_hosts.read_text(errors="replace").splitlines()
            if _is_entry_for(line, patterns)]
