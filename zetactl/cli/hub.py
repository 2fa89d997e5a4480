"""The shared hubs' token registries: list, verify, reconcile, capacity."""

from __future__ import annotations

import asyncio
import sys
from typing import Annotated

import typer

from zetactl.cli.common import FormatOpt, InventoryOpt, check_format
from zetactl.cli.tenant import ConnectTimeoutOpt, finish, hubs_for
from zetactl.errors import ExitCode
from zetactl.report import print_json
from zetactl.tables import tabulate


def tokens(
    tenant: Annotated[str | None, typer.Option("--tenant", help="Only this tenant.")] = None,
    output_format: FormatOpt = "table",
) -> None:
    """Every token the controller knows, per hub: tenant, service, token id, state, created. Never a token.

    States: registering, active, pending-revoke (not yet proven refused), revoked (proven refused).

    Example: zetactl hub tokens --tenant acme
    """
    from zetactl.hubs import records
    from zetactl.hubs.tenants import tokens_table

    check_format(output_format)
    chosen = [records.load(tenant)] if tenant else records.all_tenants()
    rows = tokens_table(chosen)
    if output_format == "json":
        print_json(sys.stdout, rows)
    else:
        sys.stdout.write(tabulate([[r["tenant"], r["service"], r["hub"], r["token_id"], r["state"], r["created"]]
                                   for r in rows], headers=["tenant", "service", "hub", "token id", "state",
                                                            "created (UTC)"]) + "\n")


def verify(
    names: Annotated[list[str] | None, typer.Argument(help="Tenants (default: every ready tenant).")] = None,
    inventory: InventoryOpt = None,  # type: ignore[assignment]
    connect_timeout: ConnectTimeoutOpt = 10.0,
    output_format: FormatOpt = "table",
) -> None:
    """From each tenant machine: its token accepted by each hub; no token, a wrong token, its token under
    another identity and under another service refused. Exit 2 when a hub answers wrongly, 3 when unreachable.

    Example: zetactl hub verify --format json
    """
    from zetactl.hubs import tenants

    check_format(output_format)
    hubs, _ = hubs_for(inventory, connect_timeout)
    finish(tenants.verify(hubs, names), output_format)


def reconcile(
    inventory: InventoryOpt = None,  # type: ignore[assignment]
    connect_timeout: ConnectTimeoutOpt = 10.0,
    output_format: FormatOpt = "table",
) -> None:
    """Finish pending registrations, revocations (proven refused) and file removals. Idempotent.

    Example: zetactl hub reconcile
    """
    from zetactl.hubs import tenants

    check_format(output_format)
    hubs, path = hubs_for(inventory, connect_timeout)
    finish(tenants.reconcile(hubs, path), output_format)


def capacity(
    inventory: InventoryOpt = None,  # type: ignore[assignment]
    connect_timeout: ConnectTimeoutOpt = 10.0,
    output_format: FormatOpt = "table",
) -> None:
    """How many more tenants fit on each hub host, from its real free disk and available memory.

    Example: zetactl hub capacity
    """
    from zetactl.hubs import tenants

    check_format(output_format)
    hubs, _ = hubs_for(inventory, connect_timeout)
    caps = asyncio.run(tenants.capacity(hubs))
    rows = [{"hub": c.host, "tenants": c.tenants, "free_disk": c.free_disk, "mem_available": c.mem_available,
             "disk_per_tenant": c.disk_per_tenant, "mem_per_tenant": c.mem_per_tenant, "fits": c.fits,
             "error": c.error} for c in caps]
    if output_format == "json":
        print_json(sys.stdout, {"hubs": rows, "fits": min((c.fits for c in caps), default=0)})
    else:
        size = tenants.size
        sys.stdout.write(tabulate([[c.host, c.tenants, size(c.free_disk), size(c.disk_per_tenant),
                                    size(c.mem_available), size(c.mem_per_tenant), c.fits, c.error or ""]
                                   for c in caps],
                                  headers=["hub", "tenants", "disk free", "per tenant", "memory available",
                                           "per tenant", "fits", "error"]) + "\n")
    if any(c.error for c in caps):
        raise typer.Exit(int(ExitCode.UNREACHABLE))


COMMANDS = {"tokens": tokens, "verify": verify, "reconcile": reconcile, "capacity": capacity}
