"""Result records: one per step, one per host. Plain data for the journal and the report."""

from __future__ import annotations

from dataclasses import dataclass, field

from zetactl.engine.states import State


@dataclass
class StepRecord:
    key: int  # step index; handlers are numbered after the steps
    name: str
    kind: str
    handler: bool
    state: State = State.PENDING
    changed: bool = False
    summary: str = ""  # what changed, or why nothing had to
    error: str = ""
    diff: str | None = field(default=None, repr=False)
    status: str = ""  # an action's precise outcome (rolled-back, failed-units, reboot-required, ...)


HOST_STATUSES = ("ok", "changed", "reboot-required", "failed", "rolled-back", "failed-units", "activation-failed",
                 "unhealthy", "unreachable", "interrupted", "not-run")
# Statuses that count as a failure (exit code, --max-fail): a NixOS switch that was rolled back or
# left failed units is never a success; `unhealthy` is a host whose health gate failed.
FAILURES = frozenset({"failed", "rolled-back", "failed-units", "activation-failed", "unhealthy"})
SUCCESSES = frozenset({"ok", "changed", "reboot-required"})


@dataclass
class HostOutcome:
    host: str
    status: str = "ok"
    error: str = ""
    elapsed: float = 0.0
    steps: list[StepRecord] = field(default_factory=list)
    gate: str = ""  # "" (no gate ran), "passed", or what failed
    timings: dict[str, float] = field(default_factory=dict)  # seconds per phase: connect, probe, apply, ...

    def count(self, what: str) -> int:
        if what == "changed":
            return sum(1 for s in self.steps if s.state == State.DONE and s.changed)
        if what == "ok":
            return sum(1 for s in self.steps if s.state == State.DONE and not s.changed)
        if what == "failed":
            return sum(1 for s in self.steps if s.state == State.FAILED)
        if what == "skipped":
            return sum(1 for s in self.steps if s.state == State.SKIPPED)
        if what == "blocked":
            return sum(1 for s in self.steps if s.state == State.BLOCKED)
        raise ValueError(what)

    def to_json(self) -> dict[str, object]:
        return {
            "status": self.status,
            "ok": self.count("ok"),
            "changed": self.count("changed"),
            "failed": self.count("failed"),
            "skipped": self.count("skipped"),
            "unreachable": 1 if self.status == "unreachable" else 0,
            "elapsed": round(self.elapsed, 3),
            "error": self.error,
            **({"gate": self.gate} if self.gate else {}),
            "timings": {k: round(v, 3) for k, v in self.timings.items()},
            "steps": [
                {"name": s.name, "kind": s.kind, "handler": s.handler, "state": str(s.state),
                 "changed": s.changed, "summary": s.summary, "error": s.error,
                 **({"status": s.status} if s.status else {})}
                for s in self.steps
            ],
        }
