"""`zetactl run 'CMD'`: one ad hoc command on many hosts, output grouped per host."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass

from zetactl.inventory import Host
from zetactl.transport import ConnectOptions, Unreachable, connect, run


@dataclass(frozen=True)
class CommandResult:
    host: str
    status: str  # ok | failed | unreachable | interrupted
    exit_status: int | None
    stdout: str
    stderr: str
    elapsed: float
    error: str = ""


async def _one(host: Host, command: str, options: ConnectOptions, timeout: float,
               semaphore: asyncio.Semaphore) -> CommandResult:
    async with semaphore:
        started = time.monotonic()
        try:
            async with asyncio.timeout(timeout):
                conn = await connect(host, options)
                async with conn:
                    result = await run(conn, command)
        except TimeoutError:
            return CommandResult(host.name, "unreachable", None, "", "", time.monotonic() - started,
                                 f"deadline of {timeout:g}s exceeded")
        except Unreachable as exc:
            return CommandResult(host.name, "unreachable", None, "", "", time.monotonic() - started, str(exc))
        code = result.exit_status if result.exit_status is not None else 255
        return CommandResult(host.name, "ok" if code == 0 else "failed", code, str(result.stdout or ""),
                             str(result.stderr or ""), time.monotonic() - started)


async def run_command(hosts: Sequence[Host], command: str, *, forks: int, timeout: float,
                      options: ConnectOptions) -> list[CommandResult]:
    semaphore = asyncio.Semaphore(max(1, forks))
    return list(await asyncio.gather(*(_one(h, command, options, timeout, semaphore) for h in hosts)))
