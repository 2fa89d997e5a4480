"""The controller's tenant records: which token ids exist, where each is registered, what is pending.

    $ZETACTL_HOME/hubs/tenants/NAME.json   0600 in a 0700 folder, temp file + rename; hashes only

A token's state on each hub host is one of
    registering  to be added to that hub's registry (not confirmed yet)
    active       in the registry
    revoking     to be removed (the hub could not be reached, or the refusal is not proven yet): PENDING
    revoked      removed, and the hub was seen refusing it
so an interrupted command leaves a record the next command (or `hub reconcile`) completes.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from zetactl.errors import BadInput, ZetaError
from zetactl.fileio import write_atomic
from zetactl.hubs.model import check_tenant_name
from zetactl.paths import state_dir

HUB_STATES = ("registering", "active", "revoking", "revoked")


def hubs_dir() -> Path:
    return state_dir() / "hubs"


@dataclass
class Token:
    service: str
    token_id: str
    hash: str
    created: int
    generation: int  # the generation of the tenant's credential that carries it
    hubs: dict[str, str] = field(default_factory=dict)  # hub host -> one of HUB_STATES
    retired: bool = False  # replaced by a rotation, or the tenant removed: to be revoked everywhere

    @property
    def state(self) -> str:
        """One word for the token across its hubs (the least finished one wins)."""
        states = set(self.hubs.values()) or {"registering"}
        for state in ("revoking", "registering"):
            if state in states:
                return state
        if states == {"revoked"}:
            return "revoked"
        return "active" if states == {"active"} else "partial"

    def pending(self) -> list[tuple[str, str]]:
        """(hub host, what is left to do) for the hubs where this token is not settled."""
        out = []
        for hub, state in sorted(self.hubs.items()):
            if state == "registering" or (state == "active" and self.retired):
                out.append((hub, "revoke" if self.retired else "register"))
            elif state == "revoking":
                out.append((hub, "revoke"))
        return out


@dataclass
class Tenant:
    name: str
    machine: str  # the inventory host of the tenant machine
    identity: str  # NAME@MACHINE: what the hubs know it as (X-Hero-Context)
    created: int
    state: str = "adding"  # adding | ready | rotating | removing | removed
    tokens: list[Token] = field(default_factory=list)
    files: str = "none"  # on the tenant machine: none | delivered | removing | removed

    def current(self) -> list[Token]:
        return [t for t in self.tokens if not t.retired]

    def retiring(self) -> list[Token]:
        return [t for t in self.tokens if t.retired and t.state != "revoked"]

    def pending(self) -> list[tuple[Token, str, str]]:
        return [(t, hub, what) for t in self.tokens for hub, what in t.pending()]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def path(name: str) -> Path:
    return hubs_dir() / "tenants" / f"{check_tenant_name(name)}.json"


def exists(name: str) -> bool:
    return path(name).is_file()


def load(name: str) -> Tenant:
    file = path(name)
    if not file.is_file():
        raise BadInput(f"no tenant named {name!r} (add it: zetactl tenant add {name} --machine HOST)")
    data = json.loads(file.read_text())
    tokens = [Token(**t) for t in data.pop("tokens", [])]
    return Tenant(**data, tokens=tokens)


def save(tenant: Tenant) -> None:
    file = path(tenant.name)
    for directory in (hubs_dir(), file.parent):
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        directory.chmod(0o700)
    write_atomic(file, json.dumps(tenant.to_json(), indent=1, sort_keys=True) + "\n", 0o600)


def names() -> list[str]:
    folder = hubs_dir() / "tenants"
    return sorted(p.stem for p in folder.glob("*.json")) if folder.is_dir() else []


def all_tenants() -> list[Tenant]:
    return [load(n) for n in names()]


class Busy(ZetaError):
    """Another zetactl on this controller is working on the same tenant."""


@contextlib.contextmanager
def locked(name: str, wait: float = 30.0) -> Iterator[None]:
    """Serialise commands on one tenant on this controller (the hubs' registries have their own lock)."""
    folder = hubs_dir() / "locks"
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(folder / f"{check_tenant_name(name)}.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise Busy(f"tenant {name} is being changed by another zetactl (waited {wait:g}s)") from None
                time.sleep(0.1)
        yield
    finally:
        os.close(fd)
