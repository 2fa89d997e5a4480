"""`zetactl health` on a healthy lab: the sweep's wall time against the floor (a bare connect to
every node, all at once, running the same probe script the sweep sends it, as a command of its own:
interpreter start included, like the sweep's). Writes its section of docs/benchmarks.md.

    .venv/bin/python benchmarks/health.py --nodes 100
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from doc_sections import write_section
from lab_session import fresh_lab

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "benchmarks" / ".work"
LAB_DIR = WORK / "health-lab"
ZETACTL = ROOT / ".venv" / "bin" / "zetactl"
SUBNET = 100


def floor_command(inventory: Path, env: dict[str, str]) -> float:
    """The floor as a command of its own (`health.py --floor INVENTORY`), timed from outside like the sweep."""
    started = time.monotonic()
    subprocess.run([sys.executable, __file__, "--floor", str(inventory)], env=env, check=True)
    return time.monotonic() - started


def floor(inventory: Path) -> float:
    """One asyncssh connection per node, all at once, each running the sweep's probe script for that node
    (built before the clock starts): the least a sweep that reads the same things can cost."""
    sys.path.insert(0, str(ROOT))
    from zetactl.health.checks import custom_checks, probe_script
    from zetactl.health.hubs import hub_view
    from zetactl.health.sweep import credential_records
    from zetactl.inventory import load_inventory
    from zetactl.remote.runner import run
    from zetactl.transport import ConnectOptions, connect

    inv = load_inventory(inventory)
    view = hub_view(inv)
    creds = credential_records(list(inv.hosts.values()))
    scripts = {name: probe_script(host, custom_checks(host), 5.0, sorted(creds.get(name, {})), view.lines(host))
               for name, host in inv.hosts.items()}

    async def one(name: str) -> None:
        async with await connect(inv.host(name), ConnectOptions()) as conn:
            result = await run(conn, scripts[name])
            assert "clock" in result.records(), result.err

    async def every() -> None:
        await asyncio.gather(*(one(n) for n in inv.hosts))

    started = time.monotonic()
    asyncio.run(every())
    return time.monotonic() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, default=100)
    parser.add_argument("--floor", type=Path, help=argparse.SUPPRESS)  # run only the floor on this inventory
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-doc", action="store_true")
    args = parser.parse_args()
    if args.floor:
        floor(args.floor)
        return 0
    env = {**os.environ, "ZETACTL_HOME": str(WORK / "health-home")}
    shutil.rmtree(WORK / "health-home", ignore_errors=True)
    sweeps, floors = [], []
    with fresh_lab(LAB_DIR, args.nodes, SUBNET, env) as inventory:
        for _ in range(args.repeat):
            started = time.monotonic()
            proc = subprocess.run([ZETACTL, "health", "-i", inventory, "--format", "json"], env=env,
                                  capture_output=True, text=True)
            sweeps.append(time.monotonic() - started)
            if proc.returncode != 0:
                raise SystemExit(f"health exited {proc.returncode} on a healthy lab:\n{proc.stdout[-2000:]}")
            if json.loads(proc.stdout)["status"] != "OK":
                raise SystemExit("the healthy lab was not OK")
            floors.append(floor_command(inventory, env))
    sweep, bare = sorted(sweeps)[len(sweeps) // 2], sorted(floors)[len(floors) // 2]
    section = (
        "<!-- health:begin -->\n## `zetactl health` on a healthy lab\n\n"
        f"Written by `benchmarks/health.py --nodes {args.nodes}` on {datetime.now(UTC).strftime('%Y-%m-%d %H:%M')} "
        f"UTC ({os.cpu_count()} cores); medians of {args.repeat} runs.\n\n"
        "| nodes | `zetactl health` (whole command) s "
        "| floor: connect + the same probe script per node (whole command) s | ratio |\n"
        "|---|---|---|---|\n"
        f"| {args.nodes} | {sweep:.2f} | {bare:.2f} | {sweep / bare:.1f}x |\n\n"
        "Both are whole commands, timed from outside: the sweep adds judging, the lock, the SQLite history and "
        "the JSON output to what the floor does (interpreter start, the inventory, one connection and one "
        "probe script of about 20 checks per node). Both pay the nodes' side of the probe, on the same 2 cores.\n"
        "<!-- health:end -->\n"
    )
    print(section)
    if not args.no_doc:
        write_section("health", section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
