"""Run a health gate on one host over its connection; each check retried until its deadline.

Unit and command checks of one poll go in one script; HTTP checks go through the host's own SSH
connection (a direct-tcpip channel), so the node needs no curl and the port need not be reachable
from the controller.
"""

from __future__ import annotations

import asyncio
import time
from urllib.parse import urlsplit

import asyncssh

from zetactl.gate import GateCheck
from zetactl.steps.base import q


async def run_gate(conn: asyncssh.SSHClientConnection, checks: tuple[GateCheck, ...]) -> str | None:
    """None when every check passed within its deadline; else what failed (first failure)."""
    started = time.monotonic()
    pending = dict(enumerate(checks))
    last: dict[int, str] = {}
    delay = 0.2
    while pending:
        shell = {i: c for i, c in pending.items() if c.kind != "http"}
        http = {i: c for i, c in pending.items() if c.kind == "http"}
        (shell_passed, shell_problems), http_problems = await asyncio.gather(
            _shell_checks(conn, shell), asyncio.gather(*(http_check(conn, c) for c in http.values())))
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


async def _shell_checks(conn: asyncssh.SSHClientConnection, checks: dict[int, GateCheck]
                        ) -> tuple[list[int], dict[int, str]]:
    if not checks:
        return [], {}
    lines = []
    for index, check in checks.items():
        if check.kind == "unit":
            lines.append(f"zs=$(systemctl is-active -- {q(check.target)} 2>/dev/null); "
                         f"[ \"$zs\" = active ] && echo 'ok {index}' || echo \"no {index} unit is $zs\"")
        else:
            lines.append(f"( {check.target} ) </dev/null >/dev/null 2>&1; zr=$?; "
                         f"[ $zr -eq 0 ] && echo 'ok {index}' || echo \"no {index} exit $zr\"")
    try:
        result = await asyncio.wait_for(conn.run("sh", input="\n".join(lines) + "\n", check=False,
                                                 errors="replace"), 30)
    except (OSError, asyncssh.Error, TimeoutError) as exc:
        return [], {i: f"connection lost: {exc}" for i in checks}
    passed, problems = [], {}
    for line in str(result.stdout).splitlines():
        verdict, _, rest = line.partition(" ")
        index_text, _, why = rest.partition(" ")
        if index_text.isdigit():
            if verdict == "ok":
                passed.append(int(index_text))
            else:
                problems[int(index_text)] = why
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
