"""What a connection costs the controller per key exchange: zetactl's own connect (host key checked
against the pin) to every node of a lab, all at once, per algorithm the lab's sshd offers; CPU seconds
of this process per connection, and the wall time of the whole fan-out. Writes its section of
docs/ssh.md.

    .venv/bin/python benchmarks/kex.py --nodes 100
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from doc_sections import write_section
from lab_session import fresh_lab

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "benchmarks" / ".work"
LAB_DIR = WORK / "kex-lab"
DOC = ROOT / "docs" / "ssh.md"
SUBNET = 100
KEX = ["curve25519-sha256", "ecdh-sha2-nistp256", "diffie-hellman-group14-sha256", "diffie-hellman-group16-sha512"]


def measure(inventory: Path, kex: str) -> tuple[float, float, int]:
    """(CPU seconds per connection, wall seconds for all, connections made: only `kex` is offered)."""
    sys.path.insert(0, str(ROOT))
    from zetactl.inventory import load_inventory
    from zetactl.transport import ConnectOptions, connect

    inv = load_inventory(inventory)
    hosts = [replace(h, vars={**h.vars, "zeta_ssh_kex": [kex]}) for h in inv.hosts.values()]
    made = []

    async def one(host: object) -> None:
        conn = await connect(host, ConnectOptions(connect_timeout=60))
        made.append(host)
        conn.close()
        await conn.wait_closed()

    async def every() -> None:
        await asyncio.gather(*(one(h) for h in hosts))

    cpu, wall = time.process_time(), time.monotonic()
    asyncio.run(every())
    return (time.process_time() - cpu) / len(hosts), time.monotonic() - wall, len(made)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, default=100)
    parser.add_argument("--no-doc", action="store_true")
    args = parser.parse_args()
    env = {**os.environ, "ZETACTL_HOME": str(WORK / "kex-home")}
    rows = []
    with fresh_lab(LAB_DIR, args.nodes, SUBNET, env) as inventory:
        measure(inventory, KEX[0])  # warm every node's sshd once
        for kex in KEX:
            per_connection, wall, made = measure(inventory, kex)
            rows.append(f"| `{kex}` | {made}/{args.nodes} | {per_connection * 1000:.1f} | {wall:.2f} |")
    text = "\n".join([
        "<!-- kex:begin -->",
        "### Measured: the controller's cost per connection",
        "",
        f"`benchmarks/kex.py --nodes {args.nodes}` on {datetime.now(UTC).strftime('%Y-%m-%d %H:%M')} UTC "
        f"({os.cpu_count()} cores): zetactl's connect (pinned host key checked, key login) to {args.nodes} lab "
        "nodes at once, one key exchange at a time; CPU is this process's, divided by the nodes.",
        "",
        "| `zeta_ssh_kex` (the only one offered) | connected | controller CPU ms per connection | wall s, all nodes |",
        "|---|---|---|---|",
        *rows,
        "<!-- kex:end -->",
    ])
    print(text)
    if not args.no_doc:
        write_section("kex", text, DOC)
    return 0


if __name__ == "__main__":
    sys.exit(main())
