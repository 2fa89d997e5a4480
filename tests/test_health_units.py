"""Health pieces without a lab: history streaks, the failed-sweep Prometheus file, key removal scripts."""

from __future__ import annotations

from pathlib import Path

from zetactl.health.checks import HostHealth, Severity
from zetactl.health.history import database, record
from zetactl.health.output import prometheus_failed
from zetactl.nodes import remove_keys_script


def sweep_of(host: str, severity: Severity) -> HostHealth:
    health = HostHealth(host)
    health.add("disk:/", severity, "disk")
    return health


def test_a_partial_sweep_does_not_reset_another_hosts_streak(tmp_path: Path) -> None:
    db = database(tmp_path / "h.sqlite")
    record(db, [sweep_of("a", Severity.CRITICAL), sweep_of("b", Severity.OK)], now=1000)
    record(db, [sweep_of("b", Severity.OK)], now=2000)  # --limit b
    since = record(db, [sweep_of("a", Severity.CRITICAL), sweep_of("b", Severity.OK)], now=3000)
    assert since[("a", "disk:/")] == 1000 and since[("b", "disk:/")] == 1000
    since = record(db, [sweep_of("a", Severity.WARNING)], now=4000)  # a new severity starts a new streak
    assert since[("a", "disk:/")] == 4000


def test_a_failed_sweep_leaves_no_stale_ok_for_the_collector() -> None:
    text = prometheus_failed("another health sweep is running\nsecond line")
    assert "zeta_health_sweep_ok 0" in text and "zeta_health_status" not in text
    assert "\nsecond line" not in text  # the reason stays one comment line


def test_key_removal_never_runs_without_keys_and_checks_the_kept_key(tmp_path: Path) -> None:
    from tests.nodesh import run_local
    from zetactl.remote import script

    assert "grep" not in remove_keys_script("root", []).text
    keys = tmp_path / "root"
    keys.write_text("ssh-ed25519 AAAAold old\nssh-ed25519 AAAAnew new\n")
    kept = run_local(script("keys_remove.sh", FILE=str(keys), BLOBS="AAAAold", KEEP="AAAAnew"))
    assert kept.rc == 0 and kept.records().text("keys") == "removed"
    assert keys.read_text() == "ssh-ed25519 AAAAnew new\n"
    refused = run_local(script("keys_remove.sh", FILE=str(keys), BLOBS="AAAAnew", KEEP="AAAAnew"))
    assert refused.rc == 1 and "kept key is missing" in refused.err
    assert keys.read_text() == "ssh-ed25519 AAAAnew new\n" and sorted(p.name for p in tmp_path.iterdir()) == ["root"]


def test_a_skewed_node_clock_is_warned_then_critical() -> None:
    """The skew judged from what the node reports (tests/faults/test_lab_faults.py skews a lab node for real)."""
    from zetactl.health.checks import judge, read
    from zetactl.inventory import load_inventory
    from zetactl.remote import Records

    host = load_inventory(Path(__file__).resolve().parent.parent / "inventory" / "hosts.yml").host("cp1")
    received = 1_800_000_000.0
    for offset, expected in ((0.4, Severity.OK), (-5.0, Severity.WARNING), (45.0, Severity.CRITICAL),
                             (-3600.0, Severity.CRITICAL)):
        health = HostHealth("cp1")
        found = read(Records({"clock": f"{received + offset:.3f}".encode()}), [], [])
        judge(host, health, found, received - 0.01, received, [], {})
        finding = next(f for f in health.findings if f.check == "clock_skew")
        assert finding.severity == expected and f"{offset:+.2f}s" in finding.message, (offset, finding)
    health = HostHealth("cp1")
    judge(host, health, read(Records({}), [], []), received, received, [], {})
    assert next(f for f in health.findings if f.check == "clock_skew").severity == Severity.UNKNOWN


def test_a_credential_sealed_in_the_old_envelope_format_is_a_warning() -> None:
    from zetactl.creds.envelope import VERSION
    from zetactl.health.checks import Installed, judge_credentials
    from zetactl.inventory import load_inventory

    host = load_inventory(Path(__file__).resolve().parent.parent / "inventory" / "hosts.yml").host("cp1")
    record = {"generation": 3, "target": {"path": "/run/zeta/creds/gh", "mode": "0400", "owner": "root",
                                          "group": "root"}, "hosts": {"cp1": {"digest": "d" * 64}}}
    for fmt, expected in ((VERSION, Severity.OK), (1, Severity.WARNING)):
        health = HostHealth("cp1")
        installed = Installed("3", "0", "400:root:root", "/run/zeta/creds/.gen/gh/3", "d" * 64)
        judge_credentials(health, {"gh": installed}, {"gh": {**record, "format": fmt}}, host)
        finding = next(f for f in health.findings if f.check == "credential:gh")
        assert finding.severity == expected, finding
        assert (fmt == VERSION) or "creds rotate gh" in finding.message
