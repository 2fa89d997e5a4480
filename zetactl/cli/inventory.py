"""Look at the inventory: hosts, their variables, the group tree."""

from __future__ import annotations

import sys
from typing import Annotated

import typer
import yaml

from zetactl.cli.common import FormatOpt, InventoryOpt, LimitOpt, check_format, inventory_path
from zetactl.inventory import Inventory, load_inventory, select_hosts
from zetactl.report import print_json
from zetactl.tables import tabulate


def list_hosts(inventory: InventoryOpt = None, limit: LimitOpt = None,  # type: ignore[assignment]
               output_format: FormatOpt = "table") -> None:
    """List hosts with address, user and groups.

    Example: zetactl inventory list -i inventory/hosts.yml --limit 'control_plane'
    """
    check_format(output_format)
    inv = load_inventory(inventory_path(inventory))
    names = select_hosts(inv, limit or "all")
    hosts = [inv.host(n) for n in names]
    if output_format == "json":
        print_json(sys.stdout, {h.name: {"address": h.address, "port": h.port, "user": h.user,
                                         "groups": list(h.groups), "role": h.role} for h in hosts})
        return
    rows = [[h.name, f"{h.address}:{h.port}", h.user, h.role or "", ",".join(g for g in h.groups if g != "all")]
            for h in hosts]
    sys.stdout.write(tabulate(rows, headers=["host", "address", "user", "role", "groups"]) + "\n")


def show(host: Annotated[str, typer.Argument(help="Host name.")], inventory: InventoryOpt = None,  # type: ignore[assignment]
         output_format: FormatOpt = "table") -> None:
    """Show one host's merged variables (all < groups < host) and where it is declared.

    Example: zetactl inventory show lab-001 -i inventory/hosts.yml
    """
    check_format(output_format)
    inv = load_inventory(inventory_path(inventory))
    h = inv.host(host)
    data = {"host": h.name, "declared_at": h.source, "address": h.address, "port": h.port, "user": h.user,
            "groups": list(h.groups), "known_hosts": str(h.known_hosts), "vars": dict(h.vars)}
    if output_format == "json":
        print_json(sys.stdout, data)
    else:
        sys.stdout.write(yaml.safe_dump(data, sort_keys=False))


def graph(inventory: InventoryOpt = None) -> None:  # type: ignore[assignment]
    """Print the group tree with its hosts, like ansible-inventory --graph.

    Example: zetactl inventory graph -i inventory/hosts.yml
    """
    inv = load_inventory(inventory_path(inventory))
    sys.stdout.write("\n".join(_graph(inv, "all", 0)) + "\n")


def _graph(inv: Inventory, group: str, depth: int) -> list[str]:
    pad = "  |" * depth
    lines = [f"{pad}--@{group}:" if depth else f"@{group}:"]
    for child in inv.groups[group].children:
        lines.extend(_graph(inv, child, depth + 1))
    if group == "all" and inv.groups.get("ungrouped") and inv.groups["ungrouped"].hosts:
        lines.extend(_graph(inv, "ungrouped", depth + 1))
    for host in inv.groups[group].hosts:
        lines.append(f"{'  |' * (depth + 1)}--{host}")
    return lines


COMMANDS = {"list": list_hosts, "show": show, "graph": graph}
