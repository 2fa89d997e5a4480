"""Run one script on many hosts, output grouped per host: `zetactl run 'CMD'` (an operator's command, shown as it
is) and zetactl's own read-only scripts (`agents status`, `creds list --live`: framed answers)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass

from zetactl.inventory import Host
from zetactl.remote import Answer, Sh
from zetactl.remote.runner import run
from zetactl.transport import ConnectOptions, Unreachable, connect


@dataclass(frozen=True)
class CommandResult:
    host: str
    status: str  # ok | failed | unreachable | interrupted
    exit_status: int | None
    stdout: str
    stderr: str
    elapsed: float
    error: str = ""
    answer: Answer | None = None  # what the node answered (its records, for a framed script)


async def _one(host: Host, script: Sh, options: ConnectOptions, timeout: float, semaphore: asyncio.Semaphore,
               raw: bool) -> CommandResult:
    async with semaphore:
        started = time.monotonic()
        try:
            async with asyncio.timeout(timeout):
                conn = await connect(host, options)
                async with conn:
                    answer = await run(conn, script, raw=raw)
        except TimeoutError:
            return CommandResult(host.name, "unreachable", None, "", "", time.monotonic() - started,
                                 f"deadline of {timeout:g}s exceeded")
        except Unreachable as exc:
            return CommandResult(host.name, "unreachable", None, "", "", time.monotonic() - started, str(exc))
        code = answer.rc if answer.rc is not None else 255
        return CommandResult(host.name, "ok" if code == 0 else "failed", code, answer.text, answer.err,
                             time.monotonic() - started, answer=answer)


async def run_command(hosts: Sequence[Host], script: Sh, *, forks: int, timeout: float, options: ConnectOptions,
                      raw: bool = False) -> list[CommandResult]:
    """`script` on every host (at most `forks` at once); `raw`: an operator's command whose output is shown."""
    semaphore = asyncio.Semaphore(max(1, forks))
    return list(await asyncio.gather(*(_one(h, script, options, timeout, semaphore, raw) for h in hosts)))
