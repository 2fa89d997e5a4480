"""`zetactl health` against the lab: healthy, then one fault of each kind, the deadline, the lock,
Prometheus output, and the exact cron and systemd commands of docs/health.md."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncssh
import pytest
import yaml

from tests.conftest import ROOT, Cli, _lab, needs_lab
from zetactl.lab import Lab

pytestmark = [needs_lab]


@pytest.fixture(scope="module")
def healthlab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """Nine nodes: lab-001..003 control_plane, lab-004 admin, then workers and tenants."""
    yield from _lab(tmp_path_factory.mktemp("healthlab"), 9, subnet=120)


def sweep(cli: Cli, lab: Lab, *args: str, rc: int | None = None) -> dict[str, Any]:
    result = cli("health", "-i", str(lab.inventory), "--format", "json", *args, check_rc=rc)
    document: dict[str, Any] = result.json()
    return document


def finding(document: dict[str, Any], host: str, check: str) -> dict[str, Any]:
    found: dict[str, Any] = next(f for f in document["hosts"][host]["findings"] if f["check"] == check)
    return found


def test_healthy_lab_is_ok_and_history_starts(healthlab: Lab, cli: Cli) -> None:
    document = sweep(cli, healthlab, rc=0)
    assert document["status"] == "OK" and len(document["hosts"]) == 9
    assert finding(document, "lab-001", "agents")["message"].startswith("3 agents active")
    table = cli("health", "-i", str(healthlab.inventory), check_rc=0)
    assert "9 hosts: 9 OK; worst OK" in table.stdout


def test_one_fault_of_each_kind_gets_its_severity(healthlab: Lab, cli: Cli, tmp_path: Path) -> None:
    inventory = str(healthlab.inventory)
    # a credential on lab-005, then its expiry passes (the node's marker says so)
    value = tmp_path / "v"
    value.write_text("health-check-secret")
    cli("creds", "seal", "api-key", "--hosts", "lab-005", "-i", inventory, "--from-file", str(value), check_rc=0)
    cli("creds", "push", "api-key", "-i", inventory, check_rc=0)
    meta = healthlab.node("lab-005").path("/var/lib/zeta/creds/api-key.meta")
    original = meta.read_text()
    meta.write_text(re.sub(r"not-after \d+", f"not-after {int(time.time()) - 60}", original))
    # the other faults
    cli("run", "systemctl stop zeta-vera", "-i", inventory, "--limit", "lab-002", check_rc=0)  # 2 agents
    healthlab.node("lab-003").path("/run/zeta-lab/units/k3s.service").write_text("failed\n")  # failed unit
    with open(healthlab.node("lab-006").path("/run/fill"), "wb") as fill:  # /run is a 64 MiB tmpfs
        fill.write(b"\0" * 62 * 1024 * 1024)
    healthlab.stop_node("lab-007")
    new_key = healthlab.rekey("lab-008")  # reinstalled: its key no longer matches the pin
    healthlab.freeze("lab-009")
    try:
        _check_faults(cli, healthlab)
    finally:  # undo what later tests must not see
        healthlab.thaw("lab-009")
        meta.write_text(original)
        cli("run", "systemctl start zeta-vera", "-i", inventory, "--limit", "lab-002", check_rc=0)
        healthlab.node("lab-003").path("/run/zeta-lab/units/k3s.service").write_text("active\n")
        os.unlink(healthlab.node("lab-006").path("/run/fill"))
        healthlab.start_node("lab-007")
        fingerprint = asyncssh.import_public_key(new_key).get_fingerprint("sha256")
        cli("node", "trust", "lab-008", "--fingerprint", fingerprint, "-i", inventory, check_rc=0)
    sweep(cli, healthlab, rc=0)  # and the lab is healthy again


def _check_faults(cli: Cli, healthlab: Lab) -> None:
    started = time.monotonic()
    document = sweep(cli, healthlab, "--deadline", "6", rc=2)
    elapsed = time.monotonic() - started
    assert elapsed < 6 + 5, elapsed  # the frozen node did not hold the sweep past its deadline
    expected = {
        ("lab-002", "agents"): "CRITICAL",
        ("lab-003", "failed_units"): "CRITICAL",
        ("lab-005", "credential:api-key"): "CRITICAL",
        ("lab-006", "disk:/run"): "CRITICAL",
        ("lab-007", "reachable"): "CRITICAL",
        ("lab-008", "host_key"): "CRITICAL",
        ("lab-009", "reachable"): "CRITICAL",
    }
    for (host, check), severity in expected.items():
        assert finding(document, host, check)["severity"] == severity, (host, document["hosts"][host])
    assert "2 agents active" in finding(document, "lab-002", "agents")["message"]
    assert "k3s.service" in finding(document, "lab-003", "failed_units")["message"]
    assert "expired" in finding(document, "lab-005", "credential:api-key")["message"]
    assert "CHANGED" in finding(document, "lab-008", "host_key")["message"]
    assert "no answer" in finding(document, "lab-009", "reachable")["message"]
    assert document["hosts"]["lab-001"]["status"] == "OK" and document["hosts"]["lab-004"]["status"] == "OK"
    assert document["exit_code"] == 2
    # history: the failing findings know since when, and --history shows them
    again = sweep(cli, healthlab, "--deadline", "6", "--limit", "lab-002:lab-003", rc=2)
    first_since = finding(document, "lab-003", "failed_units")["since"]
    assert finding(again, "lab-003", "failed_units")["since"] == first_since
    history = cli("health", "--history", "lab-003", check_rc=0)
    assert "failed_units" in history.stdout and "CRITICAL" in history.stdout


def test_a_warning_is_exit_1(healthlab: Lab, cli: Cli, tmp_path: Path) -> None:
    inventory = tmp_path / "inventory.yml"
    data = yaml.safe_load(healthlab.inventory.read_text())
    data["all"]["vars"]["zeta_health_disk_warn"] = 0  # every disk is "too full" for a warning, none critical
    inventory.write_text(yaml.safe_dump(data))
    result = cli("health", "-i", str(inventory), "--limit", "lab-004", "--format", "json", check_rc=1)
    assert result.json()["hosts"]["lab-004"]["status"] == "WARNING"


def test_two_sweeps_at_once_the_second_exits_unknown(healthlab: Lab, cli: Cli) -> None:
    healthlab.freeze("lab-009")  # keeps the first sweep busy until its deadline
    try:
        first = cli.popen("health", "-i", str(healthlab.inventory), "--deadline", "8")
        time.sleep(2)
        started = time.monotonic()
        second = cli("health", "-i", str(healthlab.inventory), check_rc=3)
        assert time.monotonic() - started < 3
        assert "another health sweep is running" in second.stderr
        first.communicate(timeout=30)
        assert first.returncode == 2
    finally:
        healthlab.thaw("lab-009")


def test_prometheus_output_parses_and_is_written_atomically(healthlab: Lab, cli: Cli, tmp_path: Path) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    out = tmp_path / "textfile" / "zeta.prom"
    cli("health", "-i", str(healthlab.inventory), "--limit", "control_plane", "--format", "prometheus",
        "--output", str(out), check_rc=0)
    families = {f.name: f for f in text_string_to_metric_families(out.read_text())}
    status = {s.labels["host"]: s.value for s in families["zeta_health_status"].samples}
    assert status == {"lab-001": 0.0, "lab-002": 0.0, "lab-003": 0.0}
    checks = {(s.labels["host"], s.labels["check"]) for s in families["zeta_health_check"].samples}
    assert ("lab-001", "agents") in checks and ("lab-001", "clock_skew") in checks
    assert [p.name for p in out.parent.iterdir()] == ["zeta.prom"]  # no temp file left behind


def doc_block(marker: str) -> str:
    text = (ROOT / "docs" / "health.md").read_text()
    return text.split(f"<!-- {marker} -->\n```\n", 1)[1].split("```", 1)[0]


def run_documented(command: str, env_assignments: dict[str, str], lab: Lab, tmp_path: Path) -> Path:
    """Run a command exactly as documented, in a private mount namespace where its paths exist."""
    paths = {"/etc/zetactl": tmp_path / "etc", "/var/lib/zetactl": tmp_path / "home",
             "/var/lib/prometheus/node-exporter": tmp_path / "textfile"}
    for real in paths.values():
        real.mkdir(parents=True, exist_ok=True)
    (tmp_path / "etc" / "inventory.yml").symlink_to(lab.inventory)
    mounts = "".join(f"mkdir -p {p} && mount --bind {shlex.quote(str(r))} {p} && " for p, r in paths.items())
    env = {**os.environ, **env_assignments, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    proc = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", mounts + command],
                          env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc
    return tmp_path / "textfile" / "zeta.prom"


def test_the_documented_crontab_line_runs(healthlab: Lab, tmp_path: Path) -> None:
    line = doc_block("crontab").strip()
    fields = line.split(None, 6)  # m h dom mon dow user command
    assert fields[5] == "root"
    out = run_documented(fields[6], {}, healthlab, tmp_path)
    assert "zeta_health_status" in out.read_text()


def test_the_documented_systemd_service_runs(healthlab: Lab, tmp_path: Path) -> None:
    service = doc_block("service")
    env = dict(line.split("=", 2)[1:] for line in service.splitlines() if line.startswith("Environment="))
    exec_start = next(line.split("=", 1)[1] for line in service.splitlines() if line.startswith("ExecStart="))
    assert set(env) == {"ZETACTL_INVENTORY", "ZETACTL_HOME"}
    out = run_documented(exec_start, env, healthlab, tmp_path)
    assert "zeta_health_sweep_seconds" in out.read_text()
