"""Fan out over the fleet: one coroutine per host under a bound, in waves, with a failure budget.

Exceptions become outcomes (a host is never "lost"); the result is the map host -> outcome.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from zetactl.engine.host import HostRun, Listener, Resume, RunSettings
from zetactl.engine.outcome import FAILURES, HostOutcome
from zetactl.journal import Journal
from zetactl.plan import HostPlan
from zetactl.waves import make_waves, parse_amount


@dataclass(frozen=True)
class FleetSettings:
    forks: int = 100
    serial: tuple[str, ...] = ()  # wave sizes: "5", "10%", ramps like ("1", "10%", "50%")
    max_fail: str | None = None  # failure budget across the run: "3" hosts or "10%"

    def validate(self) -> None:
        """Raise BadInput for a malformed --serial or --max-fail, before anything starts."""
        for item in self.serial:
            parse_amount(item, 100, "--serial")
        if self.max_fail is not None:
            parse_amount(self.max_fail, 100, "--max-fail")


async def run_fleet(plans: Sequence[HostPlan], settings: RunSettings, fleet: FleetSettings, journal: Journal,
                    resume: dict[str, Resume], listener: Listener | None = None,
                    host_listener: Callable[[HostOutcome], None] | None = None) -> tuple[dict[str, HostOutcome], bool]:
    """Run every host; returns (outcomes in plan order, interrupted)."""
    by_name = {p.host.name: p for p in plans}
    waves = make_waves(list(by_name), fleet.serial)
    # A rollout in waves (or with a gate) stops after the first wave with a failed host unless
    # --max-fail allows more: a bad change reaches one wave, not the fleet.
    staged = len(waves) > 1 or any(p.gate for p in plans)
    max_fail = fleet.max_fail if fleet.max_fail is not None else ("0" if staged else None)
    budget = parse_amount(max_fail, len(by_name), "--max-fail") if max_fail is not None else None
    outcomes: dict[str, HostOutcome] = {}
    semaphore = asyncio.Semaphore(max(1, fleet.forks))
    interrupted = False
    loop = asyncio.get_running_loop()
    tasks: set[asyncio.Task[HostOutcome]] = set()

    def interrupt() -> None:
        nonlocal interrupted
        interrupted = True
        for task in tasks:
            task.cancel()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, interrupt)

    async def one(name: str) -> HostOutcome:
        async with semaphore:
            if interrupted:
                return HostOutcome(name, status="interrupted", error="interrupted before it started")
            outcome = await HostRun(by_name[name], settings, journal, resume.get(name, Resume()), listener).run()
            if host_listener is not None:
                host_listener(outcome)
            return outcome

    try:
        for number, wave in enumerate(waves, 1):
            if interrupted:
                break
            journal.append({"event": "wave", "wave": number, "hosts": wave})
            journal.flush()
            task_list = [asyncio.create_task(one(name)) for name in wave]
            tasks = set(task_list)
            results = await asyncio.gather(*task_list, return_exceptions=True)
            for name, result in zip(wave, results, strict=True):
                outcomes[name] = _outcome(name, result)
            failed = sum(1 for o in outcomes.values() if o.status in FAILURES | {"unreachable"})
            gate_failures = [(name, outcomes[name].gate) for name in wave
                             if outcomes[name].gate not in ("", "passed")]
            stop = None
            if gate_failures:
                name, problem = gate_failures[0]
                stop = f"the gate failed after wave {number} ({name}: {problem})"
                journal.append({"event": "gate-failed", "wave": number, "hosts": [n for n, _ in gate_failures]})
            elif budget is not None and failed > budget:
                stop = f"failure budget exceeded after wave {number} ({failed} failed > {budget} allowed)"
                journal.append({"event": "budget-exceeded", "failed": failed, "budget": budget})
            if stop and number < len(waves):
                for rest in waves[number:]:
                    for name in rest:
                        outcomes[name] = HostOutcome(name, status="not-run", error=stop)
                break
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    for name in by_name:
        outcomes.setdefault(name, HostOutcome(name, status="interrupted" if interrupted else "not-run"))
    return {name: outcomes[name] for name in by_name}, interrupted


def _outcome(name: str, result: HostOutcome | BaseException) -> HostOutcome:
    if isinstance(result, HostOutcome):
        return result
    if isinstance(result, asyncio.CancelledError):
        return HostOutcome(name, status="interrupted", error="interrupted")
    # A bug in a step or the engine must not take the fleet down: it is this host's failure.
    return HostOutcome(name, status="failed", error=f"internal error: {type(result).__name__}: {result}")
