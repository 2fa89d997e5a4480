"""The sweep: every host at once (bounded), one connection and one read-only script each, all
within a deadline; never overlapping another sweep (a lock)."""

from __future__ import annotations

import asyncio
import fcntl
import os
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from zetactl.errors import BadInput, ZetaError
from zetactl.health.checks import HostHealth, Severity, custom_checks, judge, probe_script, read
from zetactl.health.hubs import HubView, judge_hubs
from zetactl.inventory import Host
from zetactl.paths import state_dir
from zetactl.remote import BadAnswer
from zetactl.remote.runner import run
from zetactl.transport import ConnectOptions, HostKeyRefused, Unreachable, connect


class SweepBusy(ZetaError):
    """Another sweep holds the lock."""


@contextmanager
def sweep_lock(path: Path | None = None) -> Iterator[None]:
    """A non-blocking lock: a second sweep fails at once instead of piling up behind a slow one."""
    lock_path = path or state_dir() / "health.lock"
    lock_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "unknown"
            raise SweepBusy(f"another health sweep is running ({holder}); not starting a second one") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} since {time.strftime('%Y-%m-%d %H:%M:%S')}\n".encode(), 0)
        yield
    finally:
        os.close(fd)


def credential_records(hosts: Sequence[Host]) -> dict[str, dict[str, dict[str, object]]]:
    """host -> credential name -> record (the controller's view of what each host must hold)."""
    from zetactl.creds import store

    wanted: dict[str, dict[str, dict[str, object]]] = {h.name: {} for h in hosts}
    for name in store.names():
        record = store.load(name).to_json()
        for host in record["hosts"]:
            if host in wanted:
                wanted[host][name] = record
    return wanted


async def sweep(hosts: Sequence[Host], *, deadline: float, forks: int = 200,
                connect_timeout: float = 5.0, hubs: HubView | None = None) -> list[HostHealth]:
    records = credential_records(hosts)
    hubs = hubs or HubView()
    semaphore = asyncio.Semaphore(max(1, forks))
    started = time.monotonic()
    ends_at = asyncio.get_running_loop().time() + deadline  # one deadline for the sweep, queueing included

    async def one(host: Host) -> HostHealth:
        health = HostHealth(host.name)
        credentials = sorted(records.get(host.name, {}))
        try:
            checks = custom_checks(host)
            script = probe_script(host, checks, connect_timeout, credentials, hubs.lines(host))
        except BadInput as exc:
            health.add("inventory", Severity.UNKNOWN, f"bad health setting: {exc}")
            return health
        try:
            async with asyncio.timeout_at(ends_at), semaphore:
                begin = time.monotonic()
                remaining = deadline - (begin - started)
                options = ConnectOptions(connect_timeout=min(connect_timeout, max(0.1, remaining)))
                conn = await connect(host, options)
                async with conn:
                    sent = time.time()
                    result = await run(conn, script)
                    received = time.time()
                health.latency = time.monotonic() - begin
        except HostKeyRefused as exc:
            health.add("host_key", Severity.CRITICAL, str(exc))
            return health
        except Unreachable as exc:
            health.add("reachable", Severity.CRITICAL, str(exc))
            return health
        except TimeoutError:
            health.add("reachable", Severity.CRITICAL, f"no answer within the sweep's deadline ({deadline:g}s)")
            return health
        health.add("reachable", Severity.OK, f"answered in {health.latency:.2f}s", health.latency)
        health.add("host_key", Severity.OK, "matches the pinned key")
        if result.rc != 0:
            health.add("probe", Severity.UNKNOWN, f"probe script exited {result.rc}")
            return health
        try:
            found = read(result.records(), credentials, checks)
            judge(host, health, found, sent, received, checks, records.get(host.name, {}))
            judge_hubs(host, health, found.records, hubs)
        except BadInput as exc:  # one host's bad setting must not cost the whole sweep
            health.add("inventory", Severity.UNKNOWN, f"bad health setting: {exc}")
        except BadAnswer as exc:  # nothing of this host's answer is believed
            health.add("probe", Severity.UNKNOWN, f"the node's answer was not well formed: {exc}")
        return health

    return list(await asyncio.gather(*(one(h) for h in hosts)))
