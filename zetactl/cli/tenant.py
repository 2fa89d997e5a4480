"""Tenants of the shared hubs: one token per hub service, registered on every hub, proven from the tenant."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from zetactl.cli.common import FormatOpt, InventoryOpt, check_format, err, inventory_path
from zetactl.report import print_json
from zetactl.tables import tabulate

NameArg = Annotated[str, typer.Argument(help="Tenant name: lowercase letters, digits and '-'.")]
ConnectTimeoutOpt = Annotated[float, typer.Option("--connect-timeout", help="Seconds per SSH connection.")]


def hubs_for(inventory: Path | None, connect_timeout: float = 10.0) -> tuple[Any, Path]:
    """The inventory's hubs (BadInput when it declares none) and the inventory path."""
    from zetactl.hubs.model import require_hubs
    from zetactl.hubs.tenants import Hubs
    from zetactl.inventory import load_inventory
    from zetactl.transport import ConnectOptions

    path = inventory_path(inventory)
    inv = load_inventory(path)
    return Hubs(inv, require_hubs(inv), options=ConnectOptions(connect_timeout=connect_timeout),
                say=lambda line: err(f"tenant {line}")), path


def finish(report: Any, output_format: str) -> None:
    """Print what was proven, done and left pending; exit 0, 2 (a proof failed) or 3 (pending)."""
    if output_format == "json":
        print_json(sys.stdout, {
            "done": report.done, "pending": report.pending, "failed": report.failed,
            "checks": [{"tenant": t, "hub": r.check.hub.host, "service": r.check.hub.name, "case": r.check.case,
                        "expect": r.check.expect, "answer": r.code, "ok": r.ok, "verdict": r.verdict()}
                       for t, r in report.results]})
    else:
        if report.results:
            rows = [[t, r.check.hub.name, r.check.hub.host, r.check.case, r.code, "ok" if r.ok else "FAIL",
                     r.verdict()] for t, r in report.results]
            sys.stdout.write(tabulate(rows, headers=["tenant", "service", "hub", "case", "answer", "", "verdict"])
                             + "\n")
        for line in report.done:
            err(f"done: {line}")
        for line in report.failed:
            err(f"FAILED: {line}")
        for line in report.pending:
            err(f"PENDING: {line}")
    raise typer.Exit(int(report.exit_code))


def add(
    name: NameArg,
    machine: Annotated[str | None, typer.Option("--machine", help="The tenant machine (inventory host); "
                                                "default: the host named NAME.")] = None,
    inventory: InventoryOpt = None,  # type: ignore[assignment]
    connect_timeout: ConnectTimeoutOpt = 10.0,
    output_format: FormatOpt = "table",
) -> None:
    """Add a tenant: capacity check, one token per hub service, registered on every hub, delivered, proven.

    Refused before anything is created when a hub host lacks the free disk or memory one more tenant needs
    (zeta_hubs: tenant_disk, tenant_memory). A failed add leaves the tenant 'adding': running the same
    command again replaces every leftover of the failed attempt.

    Example: zetactl tenant add acme --machine tenant-a -i inventory/hosts.yml
    """
    from zetactl.errors import BadInput
    from zetactl.hubs import tenants

    check_format(output_format)
    hubs, path = hubs_for(inventory, connect_timeout)
    target = machine or name
    if target not in hubs.inv.hosts:
        raise BadInput(f"tenant machine {machine!r} is not in {path}" if machine else
                       f"no host {target!r} in {path}: say which machine the tenant runs on with --machine HOST")
    finish(tenants.add(hubs, path, name, target), output_format)


def remove(
    name: NameArg,
    inventory: InventoryOpt = None,  # type: ignore[assignment]
    connect_timeout: ConnectTimeoutOpt = 10.0,
    output_format: FormatOpt = "table",
) -> None:
    """Revoke the tenant on every hub and every service kind, prove each refuses, then remove its files.

    A hub that cannot be reached (or is not seen refusing) leaves the revocation PENDING: exit 3 names it,
    and `zetactl hub reconcile` finishes the job.

    Example: zetactl tenant remove acme
    """
    from zetactl.hubs import tenants

    check_format(output_format)
    hubs, path = hubs_for(inventory, connect_timeout)
    finish(tenants.remove(hubs, path, name), output_format)


def rotate(
    name: NameArg,
    inventory: InventoryOpt = None,  # type: ignore[assignment]
    connect_timeout: ConnectTimeoutOpt = 10.0,
    output_format: FormatOpt = "table",
) -> None:
    """New tokens, make-before-break: registered and proven from the tenant before the old ones are revoked.

    When the tenant machine (or a hub) cannot be reached, nothing is revoked and the old tokens keep
    working; running the command again continues the same rotation.

    Example: zetactl tenant rotate acme
    """
    from zetactl.hubs import tenants

    check_format(output_format)
    hubs, path = hubs_for(inventory, connect_timeout)
    finish(tenants.rotate(hubs, path, name), output_format)


def list_(output_format: FormatOpt = "table") -> None:
    """The tenants this controller knows: machine, identity, state, tokens and what is pending.

    Example: zetactl tenant list --format json
    """
    from zetactl.hubs import records

    check_format(output_format)
    rows = [{"tenant": t.name, "machine": t.machine, "identity": t.identity, "state": t.state,
             "tokens": len([k for k in t.tokens if k.state != "revoked"]), "files": t.files,
             "pending": [f"{what} {k.token_id} on {hub}" for k, hub, what in t.pending()]}
            for t in records.all_tenants()]
    if output_format == "json":
        print_json(sys.stdout, rows)
    else:
        sys.stdout.write(tabulate([[r["tenant"], r["machine"], r["identity"], r["state"], r["tokens"],
                                    "; ".join(r["pending"]) or "-"] for r in rows],  # type: ignore[arg-type]
                                  headers=["tenant", "machine", "identity", "state", "live tokens", "pending"]) + "\n")


COMMANDS = {"add": add, "remove": remove, "rotate": rotate, "list": list_}
