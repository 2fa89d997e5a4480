"""The per-step state machine: states, the transition table, and the one function that moves."""

from __future__ import annotations

from enum import StrEnum


class State(StrEnum):
    PENDING = "pending"
    PROBED = "probed"
    SATISFIED = "satisfied"
    DRIFTED = "drifted"
    APPLIED = "applied"
    VERIFIED = "verified"
    DONE = "done"
    FAILED = "failed"
    SKIPPED = "skipped"
    BLOCKED = "blocked"


S = State
TRANSITIONS: dict[State, frozenset[State]] = {
    S.PENDING: frozenset({S.PROBED, S.SKIPPED, S.BLOCKED, S.FAILED}),
    S.PROBED: frozenset({S.SATISFIED, S.DRIFTED, S.FAILED}),
    S.SATISFIED: frozenset({S.DONE}),
    # drifted -> done only in --check: the change is reported and not made
    S.DRIFTED: frozenset({S.APPLIED, S.DONE, S.FAILED, S.BLOCKED}),
    S.APPLIED: frozenset({S.VERIFIED, S.FAILED}),
    S.VERIFIED: frozenset({S.DONE}),
    S.DONE: frozenset(),
    S.FAILED: frozenset(),
    S.SKIPPED: frozenset(),
    S.BLOCKED: frozenset(),
}
FINAL = frozenset(s for s, nexts in TRANSITIONS.items() if not nexts)


class IllegalTransition(RuntimeError):
    pass


def check_transition(current: State, new: State) -> None:
    if new not in TRANSITIONS[current]:
        raise IllegalTransition(f"a step cannot go from {current} to {new}")
