"""Run a health gate on one host over its connection; each check retried until its deadline.

Unit and command checks of one poll go in one script, run by the host's runner (its lock session, or a channel
of a fresh connection after a switch); HTTP checks go through the host's own SSH connection (a direct-tcpip
channel), so the node needs no curl and the port need not be reachable from the controller.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

import asyncssh

from zetactl.errors import ZetaError
from zetactl.gate import GateCheck
from zetactl.remote import Answer, Sh, lines, operator_shell, sh, shown

Runner = Callable[[Sh], Awaitable[Answer]]


async def run_gate(conn: asyncssh.SSHClientConnection, checks: tuple[GateCheck, ...], runner: Runner) -> str | None:
    """None when every check passed within its deadline; else what failed (first failure)."""
    started = time.monotonic()
    pending = dict(enumerate(checks))
    last: dict[int, str] = {}
    delay = 0.2
    while pending:
        shell = {i: c for i, c in pending.items() if c.kind != "http"}
        http = {i: c for i, c in pending.items() if c.kind == "http"}
        (shell_passed, shell_problems), http_problems = await asyncio.gather(
            _shell_checks(runner, shell), asyncio.gather(*(http_check(conn, c) for c in http.values())))
        passed = set(shell_passed)
        last.update(shell_problems)
        for (index, _), problem in zip(http.items(), http_problems, strict=True):
            if problem is None:
                passed.add(index)
            else:
                last[index] = problem
        for index in passed:
            pending.pop(index, None)
        elapsed = time.monotonic() - started
        expired = [i for i, c in pending.items() if elapsed >= c.timeout]
        if expired:
            check = checks[expired[0]]
            return f"{check.describe()}: {last.get(expired[0], 'did not pass')} (after {check.timeout:g}s)"
        if pending:
            await asyncio.sleep(delay)
            delay = min(delay * 1.5, 2.0)
    return None


def checks_script(checks: dict[int, GateCheck]) -> Sh:
    """One script for a poll's unit and command checks: field u<index> (the unit's state) or c<index> (the exit
    status of the operator's read-only command)."""
    parts = []
    for index, check in checks.items():
        if check.kind == "unit":
            parts.append(sh(Sh("zf"), f"u{index}", Sh('"$(systemctl is-active --'), check.target, Sh('2>/dev/null)"')))
        else:
            parts.append(lines(Sh("("), operator_shell(check.target), Sh(") </dev/null >/dev/null 2>&1"),
                               sh(Sh("zf"), f"c{index}", Sh('"$?"'))))
    return lines(*parts)


async def _shell_checks(runner: Runner, checks: dict[int, GateCheck]) -> tuple[list[int], dict[int, str]]:
    if not checks:
        return [], {}
    try:
        answer = await asyncio.wait_for(runner(checks_script(checks)), 30)
        records = answer.records()
    except (OSError, asyncssh.Error, TimeoutError, ZetaError) as exc:
        return [], {i: f"no answer: {exc}" for i in checks}
    passed, problems = [], {}
    for index, check in checks.items():
        tag = f"u{index}" if check.kind == "unit" else f"c{index}"
        if tag not in records:
            problems[index] = "no answer"
            continue
        value = records.text(tag)
        if check.kind == "unit":
            if value == "active":
                passed.append(index)
            else:
                problems[index] = f"unit is {shown(value, line=True) or 'unknown'}"
        elif value == "0":
            passed.append(index)
        else:
            problems[index] = f"exit {shown(value, line=True)}"
    return passed, problems


async def http_check(conn: asyncssh.SSHClientConnection, check: GateCheck) -> str | None:
    url = urlsplit(check.target)
    host = url.hostname or "127.0.0.1"
    port = url.port or 80
    path = (url.path or "/") + (f"?{url.query}" if url.query else "")
    try:
        async with asyncio.timeout(min(10.0, check.timeout)):
            reader, writer = await conn.open_connection(host, port)
            writer.write(f"GET {path} HTTP/1.0\r\nHost: {url.netloc}\r\nUser-Agent: zetactl-gate\r\n\r\n".encode())
            status_line = (await reader.readline()).decode("latin-1").strip()
            writer.close()
    except (OSError, asyncssh.Error, TimeoutError) as exc:
        return f"no answer ({type(exc).__name__}: {exc})"
    parts = status_line.split()
    if len(parts) < 2 or not parts[1].isdigit():
        return f"not an HTTP answer: {status_line[:60]!r}"
    status = int(parts[1])
    ok = status == check.expect if check.expect is not None else 200 <= status < 300
    return None if ok else f"answered {status}"
