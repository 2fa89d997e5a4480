"""The faults of tests/faults/test_node_faults.py, as rows of docs/reliability.md (what was injected and
what must happen); a row is written when its test passed. The controller-fault tests write their own
rows, with what they saw (tests/faults/ledger.py)."""

from __future__ import annotations

import pytest

from tests.faults import ledger

NODE_FAULTS = {
    "test_node_killed_mid_run_is_unreachable_and_others_finish": (
        "node killed mid-run (its sshd and sessions stopped)",
        "that host unreachable (exit 3), the others finish"),
    "test_frozen_node_hits_its_deadline_and_others_finish": (
        "node frozen before the run (TCP connects, no banner)",
        "unreachable after --connect-timeout, the others finish, bounded wall time"),
    "test_node_frozen_mid_run_hits_the_host_deadline": (
        "node frozen mid-run", "unreachable at the host deadline (--timeout), the others finish"),
    "test_changed_host_key_is_refused_until_re_pinned": (
        "host key changed (node reinstalled)",
        "refused, nothing touched, the offered fingerprint shown; works after `node trust`"),
    "test_unknown_host_is_refused_with_fingerprint_and_trust_command": (
        "host key not pinned", "refused with the fingerprint and the trust command; nothing touched"),
    "test_interrupt_then_resume_finishes_without_redoing": (
        "controller interrupted (SIGINT) mid-run", "exit 130; --resume finishes without redoing; re-run 0"),
    "test_two_controllers_on_one_host_never_interleave": (
        "two controllers on one host at once",
        "the host lock serialises them; a second one past --lock-timeout fails naming the holder"),
    "test_full_disk_keeps_the_old_file_whole": (
        "disk full (the node's /run filled to its last block)",
        "the step fails with ENOSPC; the old file whole; no temp file; works once there is room"),
    "test_readers_never_see_a_half_written_file": (
        "a reader hashing a 3 MiB file while it is replaced 6 times",
        "every read sees the old or the new content whole"),
    "test_serial_waves_stop_when_the_failure_budget_is_spent": (
        "a dead node in the first wave (--serial 1)", "later waves not run past --max-fail; run on with a budget"),
}


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    outcome = yield
    report = outcome.get_result()
    if report.when == "call" and report.passed and item.name in NODE_FAULTS:
        fault, expected = NODE_FAULTS[item.name]
        ledger.record(fault, expected, "as expected (test passed)")
