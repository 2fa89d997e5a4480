"""The step state machine refuses every transition not in its table."""

from __future__ import annotations

import itertools

import pytest

from zetactl.engine.states import FINAL, TRANSITIONS, IllegalTransition, State, check_transition


def test_happy_paths_are_allowed() -> None:
    for path in (
        [State.PENDING, State.PROBED, State.SATISFIED, State.DONE],
        [State.PENDING, State.PROBED, State.DRIFTED, State.APPLIED, State.VERIFIED, State.DONE],
        [State.PENDING, State.SKIPPED],
        [State.PENDING, State.PROBED, State.DRIFTED, State.BLOCKED],
    ):
        for current, new in itertools.pairwise(path):
            check_transition(current, new)


@pytest.mark.parametrize("current", list(State))
def test_everything_else_is_refused(current: State) -> None:
    for new in State:
        if new in TRANSITIONS[current]:
            check_transition(current, new)
        else:
            with pytest.raises(IllegalTransition):
                check_transition(current, new)


def test_final_states_go_nowhere_and_nothing_goes_back() -> None:
    assert {State.DONE, State.FAILED, State.SKIPPED, State.BLOCKED} == FINAL
    with pytest.raises(IllegalTransition):
        check_transition(State.APPLIED, State.PROBED)
    with pytest.raises(IllegalTransition):
        check_transition(State.SATISFIED, State.APPLIED)  # no apply without a drift
