"""Turn the map host -> outcome into what people and programs read, and into the exit code."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, TextIO

from zetactl.engine.outcome import FAILURES, HOST_STATUSES, HostOutcome
from zetactl.errors import ExitCode
from zetactl.tables import tabulate


def exit_code(outcomes: Mapping[str, HostOutcome], interrupted: bool) -> ExitCode:
    return exit_code_for({o.status for o in outcomes.values()}, interrupted)


def exit_code_for(statuses: set[str], interrupted: bool = False) -> ExitCode:
    """The documented exit code for a run whose hosts ended with these statuses (deploy and run)."""
    if interrupted:
        return ExitCode.INTERRUPTED
    if statuses & (FAILURES | {"not-run"}):
        return ExitCode.FAILED
    if "unreachable" in statuses:
        return ExitCode.UNREACHABLE
    return ExitCode.OK


def recap_rows(outcomes: Mapping[str, HostOutcome]) -> list[list[Any]]:
    return [
        [name, o.status, o.count("ok"), o.count("changed"), o.count("failed"), o.count("skipped"),
         1 if o.status == "unreachable" else 0, f"{o.elapsed:.2f}s"]
        for name, o in outcomes.items()
    ]


def print_recap(out: TextIO, run_id: str, outcomes: Mapping[str, HostOutcome], *, check: bool, diff: bool,
                elapsed: float) -> None:
    if diff:
        for name, outcome in outcomes.items():
            for record in outcome.steps:
                if record.diff:
                    out.write(f"--- {name}: {record.name}\n{record.diff}")
                    if not record.diff.endswith("\n"):
                        out.write("\n")
    headers = ["host", "status", "ok", "would change" if check else "changed", "failed", "skipped",
               "unreachable", "time"]
    out.write(tabulate(recap_rows(outcomes), headers=headers, tablefmt="simple") + "\n")
    problems = [(n, o) for n, o in outcomes.items()
                if o.status in FAILURES | {"unreachable", "not-run", "reboot-required"} or o.gate not in ("", "passed")]
    if problems:
        out.write("\n")
    for name, outcome in problems:
        out.write(f"{name}: {outcome.status}: {outcome.error}\n")
    totals = {s: sum(1 for o in outcomes.values() if o.status == s) for s in HOST_STATUSES}
    summary = ", ".join(f"{count} {status}" for status, count in totals.items() if count)
    mode = " (check mode: nothing was changed)" if check else ""
    out.write(f"\nrun {run_id}: {len(outcomes)} hosts: {summary} in {elapsed:.2f}s{mode}\n")


def json_document(run_id: str, outcomes: Mapping[str, HostOutcome], *, check: bool, interrupted: bool,
                  elapsed: float, extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    code = exit_code(outcomes, interrupted)
    return {
        "run_id": run_id,
        "check": check,
        "interrupted": interrupted,
        "exit_code": int(code),
        "elapsed": round(elapsed, 3),
        **(extra or {}),
        "hosts": {name: o.to_json() for name, o in outcomes.items()},
    }


def print_json(out: TextIO, document: Any) -> None:
    out.write(json.dumps(document, indent=2) + "\n")
