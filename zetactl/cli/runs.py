"""History of runs and their per-host outcomes."""

from __future__ import annotations

import sys
import time
from typing import Annotated

import typer

from zetactl.cli.common import FormatOpt, check_format
from zetactl.journal import list_runs, load_run
from zetactl.report import print_json
from zetactl.tables import tabulate


def list_cmd(output_format: FormatOpt = "table",
             last: Annotated[int, typer.Option("--last", "-n", help="Show the newest N runs.")] = 20) -> None:
    """List recent runs.

    Example: zetactl runs list --last 5
    """
    check_format(output_format)
    runs = list_runs()[-last:]
    rows = []
    for run in runs:
        result = run.result() or {}
        hosts = result.get("hosts", {})
        statuses: dict[str, int] = {}
        for host in hosts.values():
            statuses[host["status"]] = statuses.get(host["status"], 0) + 1
        outcome = ("interrupted" if result.get("interrupted") else
                   ", ".join(f"{n} {s}" for s, n in sorted(statuses.items())) if hosts else "(no result)")
        rows.append({"run_id": run.run_id, "playbook": run.meta.get("playbook", ""),
                     "check": run.meta.get("check", False), "hosts": len(hosts), "outcome": outcome})
    if output_format == "json":
        print_json(sys.stdout, rows)
        return
    sys.stdout.write(tabulate([list(r.values()) for r in rows], headers=["run", "playbook", "check", "hosts",
                                                                          "outcome"]) + "\n")


def show(run_id: Annotated[str, typer.Argument(help="Run id, from `zetactl runs list`.")],
         output_format: FormatOpt = "table",
         events: Annotated[bool, typer.Option("--events", help="Print every journaled transition.")] = False) -> None:
    """Show one run: its inputs, each host's outcome and (with --events) every transition.

    Example: zetactl runs show 20261122-101500-ab12 --events
    """
    check_format(output_format)
    run = load_run(run_id)
    result = run.result() or {}
    if output_format == "json":
        print_json(sys.stdout, {"run_id": run.run_id, "meta": run.meta, "result": result,
                                **({"events": list(run.events())} if events else {})})
        return
    meta = run.meta
    sys.stdout.write(f"run {run.run_id}\n  playbook:  {meta.get('playbook')}\n  inventory: {meta.get('inventory')}\n"
                     f"  limit:     {meta.get('limit') or '-'}\n  check:     {meta.get('check')}\n\n")
    hosts = result.get("hosts", {})
    if hosts:
        rows = [[h, d["status"], d["ok"], d["changed"], d["failed"], d["skipped"], d["unreachable"], d["error"][:80]]
                for h, d in hosts.items()]
        sys.stdout.write(tabulate(rows, headers=["host", "status", "ok", "changed", "failed", "skipped",
                                                 "unreachable", "error"]) + "\n")
    else:
        sys.stdout.write("(no result recorded: the controller stopped before the end; --resume continues it)\n")
    if events:
        sys.stdout.write("\n")
        for event in run.events():
            stamp = time.strftime("%H:%M:%S", time.localtime(event.get("t", 0)))
            what = event.get("state") or event.get("event")
            step = f" step {event['step']} {event.get('name', '')}" if "step" in event else ""
            detail = f": {event['detail']}" if event.get("detail") else ""
            sys.stdout.write(f"{stamp} {event.get('host', '-')}{step} {what}{detail}\n")


COMMANDS = {"list": list_cmd, "show": show}
