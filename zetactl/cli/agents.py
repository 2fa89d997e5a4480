"""Agent personas (zeta-otto, zeta-lior, ...) running as systemd services outside k8s."""

from __future__ import annotations

import asyncio
import sys
from typing import Annotated

import typer

from zetactl.cli.common import FormatOpt, InventoryOpt, LimitOpt, check_format, inventory_path
from zetactl.errors import ExitCode
from zetactl.inventory import load_inventory, select_hosts
from zetactl.report import print_json
from zetactl.tables import tabulate


def status(
    inventory: InventoryOpt = None,  # type: ignore[assignment]
    limit: LimitOpt = None,
    forks: Annotated[int, typer.Option("--forks", "-f", min=1)] = 100,
    timeout: Annotated[float, typer.Option("--timeout", help="Deadline per host, seconds.")] = 30.0,
    connect_timeout: Annotated[float, typer.Option("--connect-timeout")] = 10.0,
    output_format: FormatOpt = "table",
) -> None:
    """Show which agent personas are active on each node; flag control-plane nodes below 3.

    Exit 0 when every control-plane node has at least 3 active agents, 2 when one has fewer,
    3 when a node could not be reached.

    Example: zetactl agents status -i inventory/hosts.yml --limit control_plane
    """
    from zetactl.agents import FLOOR, agents_status
    from zetactl.transport import ConnectOptions

    check_format(output_format)
    inv = load_inventory(inventory_path(inventory))
    names = select_hosts(inv, limit or "all", origin="--limit")
    nodes = asyncio.run(agents_status([inv.host(n) for n in names], forks=forks, timeout=timeout,
                                      options=ConnectOptions(connect_timeout=connect_timeout)))
    if output_format == "json":
        print_json(sys.stdout, {"floor": FLOOR, "hosts": {n.host: n.to_json() for n in nodes}})
    else:
        rows = []
        for node in nodes:
            others = sorted(p for p, s in node.agents.items() if s != "active")
            note = "UNREACHABLE: " + node.error if not node.reachable else node.error
            if node.below_floor:
                note = f"BELOW FLOOR: {len(node.active)} active < {FLOOR}" + (f"; {note}" if note else "")
            rows.append([node.host, "control-plane" if node.control_plane else "", len(node.active),
                         ", ".join(node.active), ", ".join(f"{p} ({node.agents[p]})" for p in others), note])
        sys.stdout.write(tabulate(rows, headers=["host", "role", "active", "agents", "not active", "note"]) + "\n")
    if any(n.below_floor or (n.reachable and n.error) for n in nodes):
        raise typer.Exit(int(ExitCode.FAILED))
    if any(not n.reachable for n in nodes):
        raise typer.Exit(int(ExitCode.UNREACHABLE))


COMMANDS = {"status": status}
