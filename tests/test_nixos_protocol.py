"""The nixos_rebuild conversation, driven with a scripted node: every way a switch can end."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from zetactl.errors import Unreachable
from zetactl.remote import Answer, Sh
from zetactl.remote.frame import encode
from zetactl.steps import Change, Where
from zetactl.steps.nixos import NixosRebuild

RESULT_OK = "rc 0\nnew /nix/store/new\ncurrent /nix/store/new\ngeneration 8\ndigest abc\n"
STARTED = "previous_generation 7\nstarted yes\n"

Reply = str | Exception


def framed(reply: str) -> bytes:
    """A reply written as `field value` lines (a `result` field: the rest of the lines) -> the records a switch
    script answers."""
    fields: dict[str, str] = {}
    lines = reply.splitlines()
    for index, line in enumerate(lines):
        key, _, value = line.partition(" ")
        if key in ("rc", "new", "current", "generation", "digest", "finished") and "verdict" in fields:
            fields["result"] = "\n".join(lines[index:])
            break
        if key == "rc" and not fields:
            fields["result"] = reply.rstrip("\n")
            break
        fields[key] = value
    return encode(fields)


class FakeNode:
    """Answers each script by what it is (start, wait, confirm, follow-up) from a list of replies."""

    def __init__(self, *, start: str = STARTED, wait: Reply = RESULT_OK, confirm: list[Reply] | None = None,
                 after: list[Reply] | None = None) -> None:
        self.host = "node"
        self.run_id = "run-1"
        self.start, self.wait = start, wait
        self.confirm = list(confirm or [])
        self.after = list(after or [])
        self.notes: list[tuple[str, dict[str, Any]]] = []
        self.fresh_calls = 0

    @staticmethod
    def _answer(reply: Reply) -> Answer:
        if isinstance(reply, Exception):
            raise reply
        return Answer(0, framed(reply), "")

    async def run(self, script: Sh, timeout: float) -> Answer:
        if 'systemd-run --unit="$SWITCH_UNIT"' in script.text:
            return self._answer(self.start)
        if 'while [ ! -f "$S/result" ]' in script.text:
            return self._answer(self.wait)
        return Answer(0, b"", "")

    async def run_fresh(self, script: Sh, timeout: float) -> Answer:
        self.fresh_calls += 1
        queue = self.confirm if 'ln -s "$want"' in script.text else self.after
        return self._answer(queue.pop(0) if queue else Unreachable("connection refused"))

    def note(self, event: str, **fields: Any) -> None:
        self.notes.append((event, fields))


def execute(node: FakeNode, **options: Any) -> Any:
    step = NixosRebuild({"confirm_timeout": 5, **options}, Where("play.yml", 3))
    return asyncio.run(step.execute(Change("switch", ""), node))


@pytest.fixture(autouse=True)
def no_sleep(monkeypatch: pytest.MonkeyPatch) -> Callable[..., Any]:
    """The protocol sleeps between attempts; the clock here is the attempt count, not seconds."""
    import zetactl.steps.nixos as module

    clock = {"now": 0.0}

    async def fake_sleep(seconds: float) -> None:
        clock["now"] += seconds

    monkeypatch.setattr(module.asyncio, "sleep", fake_sleep)
    monkeypatch.setattr(module.time, "monotonic", lambda: clock["now"])
    return fake_sleep


def test_confirmed_switch_is_a_success() -> None:
    result = execute(FakeNode(confirm=["verdict confirmed\n" + RESULT_OK]))
    assert result.ok and "switched to generation 8" in result.summary and result.status == ""


def test_a_lost_confirmation_answer_is_read_back_instead_of_reporting_a_rollback() -> None:
    # the confirm script ran (the node holds `verdict -> confirmed`) but every answer was lost
    node = FakeNode(confirm=[Unreachable("lost")] * 10, after=["verdict confirmed\n" + RESULT_OK])
    result = execute(node)
    assert result.ok, result
    assert ("switch-ended", {"verdict": "confirmed", "generation": "8"}) in node.notes


def test_no_fresh_connection_means_rolled_back_and_the_rollback_is_reported() -> None:
    rolled = "verdict timeout\ngeneration 7\nrollback_rc 0\n"
    result = execute(FakeNode(wait=Unreachable("connection lost"), after=[Unreachable("refused"), rolled]))
    assert not result.ok and result.status == "rolled-back"
    assert "connection lost during the switch" in result.error and "back on generation 7" in result.error


def test_a_failed_rollback_is_not_reported_as_done() -> None:
    rolled = "verdict timeout\ngeneration 7\nrollback_rc 11\n"
    result = execute(FakeNode(wait=Unreachable("lost"), after=[rolled]))
    assert result.status == "rolled-back" and "FAILED" in result.error and "exit 11" in result.error


def test_an_unknown_verdict_is_a_failure() -> None:
    result = execute(FakeNode(confirm=["verdict \n" + RESULT_OK]))
    assert not result.ok and "unknown verdict" in result.error


def test_the_node_deciding_first_is_a_rollback_even_though_the_controller_got_through() -> None:
    node = FakeNode(confirm=["verdict timeout\n" + RESULT_OK], after=["verdict timeout\ngeneration 7\nrollback_rc 0\n"])
    result = execute(node)
    assert result.status == "rolled-back" and "back on generation 7" in result.error


@pytest.mark.parametrize(("rc", "verdict", "status", "ok"), [
    ("4", "confirmed", "failed-units", False),
    ("100", "confirmed", "reboot-required", True),
    ("2", "rollback", "activation-failed", False),
    ("4", "rollback", "failed-units", False),
])
def test_exit_codes_become_distinct_outcomes(rc: str, verdict: str, status: str, ok: bool) -> None:
    answer = f"verdict {verdict}\n" + RESULT_OK.replace("rc 0", f"rc {rc}")
    result = execute(FakeNode(confirm=[answer], after=["verdict rollback\ngeneration 7\nrollback_rc 0\n"]))
    assert (result.ok, result.status) == (ok, status), result


def test_a_switch_in_flight_is_refused_before_anything_starts() -> None:
    node = FakeNode(start="inflight unit nixos-rebuild-switch-to-configuration.service is active\n")
    result = execute(node)
    assert not result.ok and "another switch is in flight" in result.error and node.fresh_calls == 0


def test_a_job_that_dies_without_a_result_is_an_activation_failure() -> None:
    result = execute(FakeNode(wait="unit inactive\n"))
    assert result.status == "activation-failed" and "ended without a result" in result.error


def test_a_resumed_run_waits_for_its_own_switch() -> None:
    node = FakeNode(start="previous_generation 7\nresumed yes\n", confirm=["verdict confirmed\n" + RESULT_OK])
    assert execute(node).ok
    assert node.notes[0][0] == "switch-resumed"


def test_config_dir_with_a_newline_is_refused() -> None:
    from zetactl.errors import BadInput

    with pytest.raises(BadInput, match="control character"):
        NixosRebuild({"config_dir": "/etc/nixos\nZETA_JOB"}, Where("play.yml", 3))


def test_the_job_script_sets_its_own_path_and_travels_as_a_quoted_value() -> None:
    from zetactl.remote import quote

    step = NixosRebuild({"config_dir": "/etc/nix'os $(x)"}, Where("play.yml", 3))
    start = step._start_script("/run/zeta/switch/a").text
    job = start.split("\nJOB=", 1)[1].split("\n# Start a switch", 1)[0]
    assert job.startswith("'") and "JOB_PATH=/run/wrappers/bin:/run/current-system/sw/bin" in job
    assert "CONFIG_DIR=" + quote("/etc/nix'os $(x)").text.replace("'", "'\"'\"'") in job
