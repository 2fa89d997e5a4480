"""A hub's tenant registry, changed over SSH: the adapter interface and its file backend (the default).

The hub contract (DESIGN.md section 10): per hub service, a registry mapping token id -> tenant, service,
sha256 of the token, not-after. The hub re-reads it when it changes. zetactl changes it atomically, under a
lock, and never leaves it half-written; it only ever holds hashes.

`RegistryBackend` is what zetactl needs of any registry; another backend (a hub admin API, a database) is one
class. `FileRegistry` keeps `/var/lib/zeta/hubs/SERVICE/registry` on the hub host:

    # zeta hub registry v1: token_id tenant service sha256 not_after
    Ab3dE5gH7jK9 acme@1f2e3d4c embedder 9c1c...e2 0

A change runs as one script on the hub host: take `flock` on SERVICE/.lock (bounded wait), copy the records that
stay into a temp file in the same directory, append the new ones, fsync, `chmod 0600` (`chown` to the
service's user `zeta-hub-SERVICE` when it exists), rename over the registry, print the result.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

import asyncssh

from zetactl.errors import ZetaError
from zetactl.remote import Answer, Sh, script, shown
from zetactl.remote.frame import number
from zetactl.remote.runner import run

HASH_RE = re.compile(r"^[0-9a-f]{64}\Z")
ID_RE = re.compile(r"^[0-9A-Za-z]{12}\Z")
IDENTITY_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,30}@[0-9a-f]{8}\Z")
LOCK_WAIT = 30
LOCKED = 75  # the script's exit code when the lock could not be taken in time


class RegistryError(ZetaError):
    """The registry could not be read or changed on a reachable hub host."""


@dataclass(frozen=True, order=True)
class Entry:
    token_id: str
    tenant: str  # the tenant identity, NAME@MACHINE
    service: str
    hash: str  # sha256 hex of the token
    not_after: int = 0  # unix seconds, 0 = never

    def line(self) -> str:
        return f"{self.token_id} {self.tenant} {self.service} {self.hash} {self.not_after}"

    def check(self) -> Entry:
        if not (ID_RE.match(self.token_id) and IDENTITY_RE.match(self.tenant) and HASH_RE.match(self.hash)
                and re.fullmatch(r"[a-z][a-z0-9-]{0,19}", self.service) and self.not_after >= 0):
            raise ValueError(f"not a valid registry entry: {self.token_id} {self.tenant} {self.service}")
        return self


def parse(text: str) -> list[Entry]:
    """The records of a registry file (comments and malformed lines skipped, as the hub does)."""
    entries = []
    for line in text.split("\n"):
        fields = line.split()
        if len(fields) != 5 or fields[0].startswith("#") or number(fields[4]) is None:
            continue
        entries.append(Entry(fields[0], fields[1], fields[2], fields[3], int(fields[4])))
    return entries


class RegistryBackend(Protocol):
    """What zetactl needs of a hub's registry. `conn` is the run's one SSH connection to the hub host."""

    async def read(self, conn: asyncssh.SSHClientConnection, service: str) -> list[Entry]: ...

    async def change(self, conn: asyncssh.SSHClientConnection, service: str, *, add: Iterable[Entry] = (),
                     drop_ids: Iterable[str] = (), drop_tenants: Iterable[str] = ()) -> list[Entry]:
        """Atomically: drop the records with these token ids or tenants, add these; returns the registry."""
        ...


class FileRegistry:
    """The default backend: a registry file per service on the hub host (the lab hub reads this one)."""

    def __init__(self, root: str = "/var/lib/zeta/hubs") -> None:
        self.root = root

    def path(self, service: str) -> str:
        return f"{self.root}/{service}/registry"

    async def read(self, conn: asyncssh.SSHClientConnection, service: str) -> list[Entry]:
        result = await run(conn, script("registry_read.sh", DIR=f"{self.root}/{service}"))
        if result.rc != 0:
            raise RegistryError(f"cannot read the {service} registry: {shown(result.err.strip()[-200:])}")
        return parse(_registry(result))

    async def change(self, conn: asyncssh.SSHClientConnection, service: str, *, add: Iterable[Entry] = (),
                     drop_ids: Iterable[str] = (), drop_tenants: Iterable[str] = ()) -> list[Entry]:
        result = await run(conn, self.change_script(service, list(add), set(drop_ids), set(drop_tenants)))
        if result.rc == LOCKED:
            raise RegistryError(f"the {service} registry is locked by another zetactl for more than {LOCK_WAIT}s")
        if result.rc != 0:
            raise RegistryError(f"cannot change the {service} registry (exit {result.rc}): "
                                f"{shown(result.err.strip()[-300:])}; the registry was left as it was")
        return parse(_registry(result))

    def change_script(self, service: str, add: list[Entry], drop_ids: set[str], drop_tenants: set[str]) -> Sh:
        for entry in add:
            entry.check()
            if entry.service != service:
                raise ValueError(f"entry for {entry.service} added to the {service} registry")
        drop_ids |= {e.token_id for e in add}
        if not all(ID_RE.match(i) for i in drop_ids) or not all(IDENTITY_RE.match(t) for t in drop_tenants):
            raise ValueError("invalid token id or tenant identity")
        # grep -E patterns, one per line: a record is dropped by its first field (id) or its second (tenant)
        patterns = [f"^{i} " for i in sorted(drop_ids)] + [f"^[^ ]+ {t.replace('.', '[.]')} "
                                                          for t in sorted(drop_tenants)]
        patterns.append("^#")  # the header is written anew
        return script("registry_change.sh", DIR=f"{self.root}/{service}", SERVICE=service, WAIT=LOCK_WAIT,
                      LOCKED=LOCKED, DROP="\n".join(patterns), ADD="\n".join(e.line() for e in sorted(add)))


def _registry(result: Answer) -> str:
    """The registry file a registry script answered (BadAnswer when the answer is not well formed)."""
    return result.records().text("registry")
