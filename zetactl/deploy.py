"""`zetactl deploy`, start to end: load -> plan -> run -> record -> report.

Load and plan raise BadInput before any connection; run returns the map host -> outcome.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from zetactl.engine.fleet import FleetSettings, run_fleet
from zetactl.engine.host import Resume, RunSettings
from zetactl.engine.outcome import SUCCESSES, HostOutcome, StepRecord
from zetactl.engine.states import State
from zetactl.errors import BadInput
from zetactl.journal import Journal, RunRecord, create_run, load_run, write_json
from zetactl.plan import Plan, Selection, load_plan
from zetactl.progress import RunProgress
from zetactl.transport import ConnectOptions


@dataclass(frozen=True)
class DeployRequest:
    playbook: Path
    inventory: Path
    selection: Selection = field(default_factory=Selection)
    check: bool = False
    diff: bool = False
    fleet: FleetSettings = field(default_factory=FleetSettings)
    timeout: float = 600.0
    lock_timeout: float = 30.0
    connect_timeout: float = 10.0

    def meta(self) -> dict[str, Any]:
        return {
            "playbook": str(self.playbook.absolute()), "inventory": str(self.inventory.absolute()),
            "limit": self.selection.limit, "tags": sorted(self.selection.tags),
            "skip_tags": sorted(self.selection.skip_tags), "extra_vars": dict(self.selection.extra_vars),
            "check": self.check, "forks": self.fleet.forks, "serial": list(self.fleet.serial),
            "max_fail": self.fleet.max_fail, "timeout": self.timeout,
        }


@dataclass(frozen=True)
class DeployResult:
    run: RunRecord
    outcomes: Mapping[str, HostOutcome]
    interrupted: bool
    elapsed: float


def prepare(request: DeployRequest) -> tuple[Plan, FleetSettings]:
    """Load and render everything; raises BadInput (with file and line) before any host is touched.

    The waves and the failure budget come from the command line, else from the playbook.
    """
    request.fleet.validate()
    plan = load_plan(request.playbook, request.inventory, request.selection, want_content=request.diff)
    fleet = replace(request.fleet, serial=request.fleet.serial or plan.playbook.serial,
                    max_fail=request.fleet.max_fail if request.fleet.max_fail is not None else plan.playbook.max_fail)
    fleet.validate()
    return plan, fleet


def request_from_run(run: RunRecord, base: DeployRequest) -> DeployRequest:
    meta = run.meta
    if meta.get("check"):
        raise BadInput(f"run {run.run_id} was a --check run: there is nothing to resume")
    selection = Selection(limit=meta.get("limit"), tags=frozenset(meta.get("tags", ())),
                          skip_tags=frozenset(meta.get("skip_tags", ())), extra_vars=meta.get("extra_vars", {}))
    fleet = replace(base.fleet, serial=tuple(meta.get("serial", ())), max_fail=meta.get("max_fail"))
    return replace(base, playbook=Path(meta["playbook"]), inventory=Path(meta["inventory"]), selection=selection,
                   check=False, fleet=fleet)


def resume_state(run: RunRecord) -> tuple[dict[str, Resume], dict[str, HostOutcome]]:
    """What each host finished in earlier attempts; hosts that ended ok are carried over whole."""
    done: dict[str, set[int]] = {}
    notified: dict[str, set[str]] = {}
    finished: dict[str, str] = {}
    names: dict[tuple[str, int], str] = {}
    for event in run.events():
        host = event.get("host")
        if not host:
            continue
        if event.get("state") == "done":
            done.setdefault(host, set()).add(int(event["step"]))
            names[(host, int(event["step"]))] = str(event.get("name", ""))
        elif event.get("event") == "notify":
            notified.setdefault(host, set()).add(str(event["handler"]))
        elif event.get("event") == "host-end":
            finished[host] = str(event.get("status"))
        elif event.get("event") == "host-start":
            finished.pop(host, None)
    carried: dict[str, HostOutcome] = {}
    previous = (run.result() or {}).get("hosts", {})
    for host, status in finished.items():
        if status in SUCCESSES:
            outcome = HostOutcome(host, status=status)
            for step in previous.get(host, {}).get("steps", []):
                outcome.steps.append(StepRecord(0, step["name"], step["kind"], step["handler"],
                                                State(step["state"]), step["changed"], step["summary"]))
            carried[host] = outcome
    resume = {h: Resume(frozenset(done.get(h, ())), frozenset(notified.get(h, ())))
              for h in done.keys() | notified.keys()}
    return resume, carried


def deploy(request: DeployRequest, *, resume_run: str | None = None, progress: bool = True) -> DeployResult:
    carried: dict[str, HostOutcome] = {}
    resume: dict[str, Resume] = {}
    if resume_run:
        run = load_run(resume_run)
        request = request_from_run(run, request)
        plan, fleet = prepare(request)
        if plan.playbook.digest != run.meta.get("digest"):
            raise BadInput(f"{request.playbook} (or a file it reads) changed since run {run.run_id}: "
                           "--resume needs the same inputs; start a new run instead")
        resume, carried = resume_state(run)
        journal = Journal(run.dir)
        journal.append({"event": "resume"})
    else:
        plan, fleet = prepare(request)
        run, journal = create_run({**request.meta(), "digest": plan.playbook.digest})
        journal.append({"event": "run-start", "hosts": [p.host.name for p in plan.hosts]})
    settings = RunSettings(
        run_id=run.run_id, playbook=str(request.playbook), check=request.check, diff=request.diff,
        timeout=request.timeout, lock_timeout=request.lock_timeout,
        connect=ConnectOptions(connect_timeout=request.connect_timeout),
    )
    todo = [p for p in plan.hosts if p.host.name not in carried]
    started = time.monotonic()
    total_steps = sum(len(p.steps) for p in todo)
    with RunProgress(len(todo), total_steps, enabled=progress) as display:
        try:
            outcomes, interrupted = asyncio.run(run_fleet(
                todo, settings, fleet, journal, resume, display.step_done, display.host_done))
        finally:
            journal.append({"event": "run-end"})
            journal.close()
    merged = {p.host.name: carried.get(p.host.name) or outcomes[p.host.name] for p in plan.hosts}
    elapsed = time.monotonic() - started
    write_json(run.dir / "result.json", {"run_id": run.run_id, "interrupted": interrupted,
                                         "hosts": {n: o.to_json() for n, o in merged.items()}}, compact=True)
    return DeployResult(run, merged, interrupted, elapsed)
