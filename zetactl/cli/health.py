"""The fleet health sweep for cron: read-only, bounded, exit codes for monitoring."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path
from typing import Annotated

import typer

from zetactl.cli.common import InventoryOpt, LimitOpt, check_format, err, inventory_path
from zetactl.errors import BadInput, ZetaError
from zetactl.inventory import load_inventory, select_hosts
from zetactl.tables import tabulate

UNKNOWN = 3


def health(
    inventory: InventoryOpt = None,  # type: ignore[assignment]
    limit: LimitOpt = None,
    output_format: Annotated[str, typer.Option("--format", help="table, json or prometheus.")] = "table",
    output: Annotated[Path | None, typer.Option("--output", help="Write the report to FILE (atomically; for "
                                                "node_exporter's textfile collector) instead of stdout.")] = None,
    deadline: Annotated[float, typer.Option("--deadline", help="The whole sweep ends within this many seconds; "
                                            "a host not done by then is CRITICAL.")] = 30.0,
    connect_timeout: Annotated[float, typer.Option("--connect-timeout")] = 5.0,
    forks: Annotated[int, typer.Option("--forks", "-f", min=1)] = 200,
    history: Annotated[str | None, typer.Option("--history", help="Show HOST's past findings instead of "
                                                "sweeping.")] = None,
    keep_days: Annotated[float, typer.Option("--keep-days", help="Prune history older than this.")] = 30.0,
) -> None:
    """Sweep the fleet read-only: reachability, host keys, clock, generation, units, agents, disk,
    memory, credentials, last run, and the checks the inventory declares.

    Exit 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN (also: bad input, or another sweep is running).

    Example: zetactl health -i inventory/hosts.yml --format prometheus --output /var/lib/node_exporter/zeta.prom
    """
    try:
        code = _health(inventory, limit, output_format, output, deadline, connect_timeout, forks, history,
                       keep_days)
    except ZetaError as exc:  # monitoring wants UNKNOWN, not the deploy exit codes
        err(f"UNKNOWN: {exc}")
        code = UNKNOWN
        if output is not None and output_format == "prometheus" and history is None:
            from zetactl.fileio import write_atomic
            from zetactl.health.output import prometheus_failed

            write_atomic(output, prometheus_failed(str(exc)), 0o644)  # read by node_exporter
    raise typer.Exit(code)


def _health(inventory: Path | None, limit: str | None, output_format: str, output: Path | None, deadline: float,
            connect_timeout: float, forks: int, history: str | None, keep_days: float) -> int:
    from zetactl.fileio import write_atomic
    from zetactl.health import history as store
    from zetactl.health.output import document, prometheus, table, to_json, worst

    check_format(output_format, ("table", "json", "prometheus"))
    if not 0 < deadline <= 3600:
        raise BadInput("--deadline must be between 0 and 3600 seconds")
    if history:
        from zetactl.remote import names

        rows = store.host_history(store.database(), names.host_name(history, "--history"))
        sys.stdout.write(tabulate([[time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t)), c, s, m,
                                    time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(since))]
                                   for t, c, s, m, since in rows],
                                  headers=["sweep", "check", "severity", "finding", "failing since"]) + "\n")
        return 0
    from zetactl.health.hubs import hub_view
    from zetactl.health.sweep import sweep, sweep_lock

    inv = load_inventory(inventory_path(inventory))
    hosts = [inv.host(n) for n in select_hosts(inv, limit or "all", origin="--limit")]
    with sweep_lock():
        started = time.monotonic()
        results = asyncio.run(sweep(hosts, deadline=deadline, forks=forks, connect_timeout=connect_timeout,
                                    hubs=hub_view(inv)))
        elapsed = time.monotonic() - started
        since = store.record(store.database(), results, keep_days=keep_days)
    if output_format == "prometheus":
        text = prometheus(results, elapsed)
    elif output_format == "json":
        text = to_json(document(results, since, elapsed))
    else:
        text = table(results, since, elapsed)
    if output is not None:
        write_atomic(output, text, 0o644)  # read by node_exporter's textfile collector
    else:
        sys.stdout.write(text)
    return int(worst(results))
