"""A load test: 500 lab nodes, a 20-step playbook, --forks from 10 to 500, then 10 consecutive runs in one
process with no file descriptor or memory leak. Minutes of work on 2 cores, so not part of `./run test`:

    ZETACTL_LOAD=1 ./run test tests/load -q        (or tests/faults/report.py, which also writes the figures)
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import needs_lab, write_playbook
from tests.faults import ledger
from zetactl.deploy import DeployRequest, deploy
from zetactl.engine.fleet import FleetSettings
from zetactl.lab import Lab

NODES = int(os.environ.get("ZETACTL_LOAD_NODES", "500"))
pytestmark = [needs_lab, pytest.mark.skipif(os.environ.get("ZETACTL_LOAD") != "1",
                                            reason="the load test runs with ZETACTL_LOAD=1")]

STEPS = ["  - directory: {path: /var/lib/t-load, mode: '0755'}", "  - directory: {path: /var/lib/t-load/conf.d}"]
STEPS += [f"  - file: {{path: /var/lib/t-load/conf.d/f{i}.conf, "
          f"content: \"{{{{ inventory_hostname }}}} {i}\\n\"}}" for i in range(10)]
STEPS += [f"  - line_in_file: {{path: /var/lib/t-load/lines, line: 'line {i} {{{{ inventory_hostname }}}}', "
          "create: true}" for i in range(4)]
STEPS += ["  - symlink: {path: /var/lib/t-load/current, target: /var/lib/t-load/conf.d/f0.conf}",
          "  - symlink: {path: /var/lib/t-load/previous, target: /var/lib/t-load/conf.d/f1.conf}",
          "  - command: {cmd: 'date +%s > /var/lib/t-load/made', creates: /var/lib/t-load/made}",
          "  - systemd: {unit: sshd, state: started}"]
assert len(STEPS) == 20


@pytest.fixture(scope="module")
def big_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    lab = Lab(tmp_path_factory.mktemp("loadlab"), subnet=80)
    try:
        lab.up(NODES, timeout=300)
        yield lab
    finally:
        lab.down()


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def _rss_kib() -> int:
    status = Path("/proc/self/status").read_text()
    return int(next(line for line in status.splitlines() if line.startswith("VmRSS:")).split()[1])


def test_500_nodes_20_steps_every_fork_count_then_10_runs_without_leaks(
        big_lab: Lab, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZETACTL_HOME", str(tmp_path / "home"))
    play = write_playbook(tmp_path, "hosts: all\nsteps:\n" + "\n".join(STEPS) + "\n")

    def one(forks: int) -> tuple[float, int]:
        request = DeployRequest(play, big_lab.inventory, fleet=FleetSettings(forks=forks))
        started = time.monotonic()
        result = deploy(request, progress=False)
        elapsed = time.monotonic() - started
        bad = {h: o.error for h, o in result.outcomes.items() if o.status not in ("ok", "changed")}
        assert not bad, list(bad.items())[:3]
        assert len(result.outcomes) == NODES
        return elapsed, sum(o.count("changed") for o in result.outcomes.values())

    sweep = []
    for number, forks in enumerate((10, 50, 100, 500)):
        elapsed, changed = one(forks)
        assert changed == (19 * NODES if number == 0 else 0)  # sshd already runs: 19 changes per node, once
        sweep.append(f"forks {forks}: {elapsed:.1f}s")
    fds, rss = _open_fds(), _rss_kib()
    times = []
    for _ in range(10):
        elapsed, changed = one(500)
        assert changed == 0
        times.append(elapsed)
    fds_after, rss_after = _open_fds(), _rss_kib()
    assert fds_after <= fds, (fds, fds_after)  # every connection's socket is closed
    assert rss_after - rss < 32 * 1024, (rss, rss_after)  # no growth with the number of runs
    ledger.record(f"load: {NODES} nodes x 20 steps, --forks 10/50/100/500, then 10 runs in one process",
                  "no errors; no file descriptor or memory growth across the runs",
                  f"0 errors; {', '.join(sweep)}; 10 runs {min(times):.1f}-{max(times):.1f}s; "
                  f"fds {fds} -> {fds_after}; RSS {rss // 1024} -> {rss_after // 1024} MiB",
                  runs=14)
