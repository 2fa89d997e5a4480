"""The lab's clock and link faults against real nodes: a skewed clock (libfaketime on one node) and a slow link
(a delaying, rate-capping proxy in front of one node's sshd). See docs/lab.md."""

from __future__ import annotations

import hashlib
import json
import re
import time
from dataclasses import replace
from pathlib import Path

import pytest

from tests.conftest import Cli, needs_lab, totals, write_playbook
from tests.faults import ledger
from zetactl.lab import Lab
from zetactl.lab.fleet import libfaketime

pytestmark = [needs_lab]
needs_faketime = pytest.mark.skipif(libfaketime() is None, reason="clock skew needs apt-get install faketime")

SKEW_PLAYBOOK = """\
hosts: all
steps:
  - directory: {path: /etc/t-skew}
  - file: {path: /etc/t-skew/app.conf, content: "skewed\\n"}
  - command: {cmd: "date +%s > /etc/t-skew/stamp", creates: /etc/t-skew/stamp}
"""


def clock_findings(document: dict[str, object]) -> dict[str, tuple[str, float]]:
    """host -> (severity, seconds) of its clock_skew finding ("clock off by +120.03s")."""
    found = {}
    hosts = document["hosts"]
    assert isinstance(hosts, dict)
    for host, result in hosts.items():
        (finding,) = [f for f in result["findings"] if f["check"] == "clock_skew"]
        match = re.fullmatch(r"clock off by ([+-]\d+\.\d+)s", finding["message"])
        assert match, finding
        found[host] = (finding["severity"], float(match.group(1)))
    return found


@needs_faketime
def test_a_skewed_clock_is_reported_and_deploys_still_converge(fault_lab: Lab, cli: Cli, tmp_path: Path) -> None:
    inv = str(fault_lab.inventory)
    fault_lab.skew("lab-001", 120)
    cli("lab", "skew", "--dir", str(fault_lab.dir), "lab-002", "--", "-5", check_rc=0)  # a negative one, by CLI
    status = {row["node"]: row for row in cli("lab", "status", "--dir", str(fault_lab.dir), "--format", "json",
                                             check_rc=0).json()}
    assert [status[n]["skew"] for n in ("lab-001", "lab-002", "lab-003")] == [120, -5, 0]

    health = cli("health", "-i", inv, "--format", "json")
    assert health.returncode == 2, health  # CRITICAL
    clocks = clock_findings(health.json())
    assert clocks["lab-001"][0] == "CRITICAL" and abs(clocks["lab-001"][1] - 120) < 5, clocks
    assert clocks["lab-002"][0] == "WARNING" and -8 < clocks["lab-002"][1] < -3, clocks
    assert clocks["lab-003"][0] == "OK", clocks  # |skew| < 2 s: the other nodes keep the controller's clock

    play = write_playbook(tmp_path, SKEW_PLAYBOOK)
    started = time.time()
    first = cli("deploy", str(play), "-i", inv, "--format", "json", check_rc=0).json()
    first_ended = time.time()
    second = cli("deploy", str(play), "-i", inv, "--format", "json", check_rc=0).json()
    ended = time.time()
    assert [first["hosts"][h]["changed"] for h in ("lab-001", "lab-002", "lab-003")] == [3, 3, 3]
    assert totals(second, "changed") == 0
    # what the node writes follows its own clock; what zetactl records follows the controller's
    stamp = int(fault_lab.node("lab-001").path("/etc/t-skew/stamp").read_text())
    assert started + 115 <= stamp <= first_ended + 125, (started, stamp, first_ended)
    assert started - 10 <= int(fault_lab.node("lab-002").path("/etc/t-skew/stamp").read_text()) <= ended
    for node in fault_lab.nodes():
        marker = dict(line.split("=", 1) for line in
                      node.path("/var/lib/zeta/state/last-run").read_text().splitlines() if "=" in line)
        assert marker["run_id"] == second["run_id"] and started - 1 <= int(marker["finished"]) <= ended + 1
    events = cli.journal(first["run_id"]) + cli.journal(second["run_id"])
    assert events and all(started - 1 <= event["t"] <= ended + 1 for event in events)

    ledger.record("clock skewed +120 s on one node (libfaketime for all its processes)",
                  "health: clock_skew CRITICAL with its sign and size; a deploy converges; zetactl's times are "
                  "the controller's", f"clock_skew CRITICAL {clocks['lab-001'][1]:+.2f}s; deploy 3 changes then "
                  f"0; the node's `date` {stamp - first_ended:+.0f}..{stamp - started:+.0f}s from the controller's "
                  "clock, journal and marker times the controller's")
    ledger.record("clock skewed -5 s on one node", "health: clock_skew WARNING, negative",
                  f"clock_skew WARNING {clocks['lab-002'][1]:+.2f}s; deploy converged")

    cli("lab", "unskew", "--dir", str(fault_lab.dir), "lab-001", check_rc=0)
    cli("lab", "skew", "--dir", str(fault_lab.dir), "lab-002", "0", check_rc=0)
    assert clock_findings(cli("health", "-i", inv, "--format", "json").json())["lab-001"][0] == "OK"
    assert not fault_lab.node("lab-001").path("/etc/ld.so.preload").exists()


SLOW_FILES = 4
SLOW_SIZE = 16 * 1024


def _slow_playbook(tmp_path: Path) -> tuple[Path, list[str]]:
    steps = ["  - directory: {path: /var/lib/t-link}"]
    digests = []
    for i in range(SLOW_FILES):
        content = hashlib.sha256(f"link-{i}".encode()).digest() * (SLOW_SIZE // 32)
        (tmp_path / f"link-{i}.bin").write_bytes(content)
        digests.append(hashlib.sha256(content).hexdigest())
        steps.append(f"  - file: {{path: /var/lib/t-link/f{i}, source: link-{i}.bin}}")
    steps.append("  - command: {cmd: 'echo done > /var/lib/t-link/done', creates: /var/lib/t-link/done}")
    return write_playbook(tmp_path, "hosts: all\nsteps:\n" + "\n".join(steps) + "\n", "link.yml"), digests


def test_a_deploy_over_a_slow_link_converges_and_a_short_connect_timeout_is_unreachable(
        fault_lab: Lab, cli: Cli, tmp_path: Path) -> None:
    inv = str(fault_lab.inventory)
    play, digests = _slow_playbook(tmp_path)
    cli("lab", "slow", "--dir", str(fault_lab.dir), "lab-002", "--delay", "150", "--rate", "64", check_rc=0)
    link = fault_lab.link("lab-002")
    assert link is not None and link.alive() and link.port == 2222
    address = fault_lab.node("lab-002").address
    # the inventory reaches lab-002 through the proxy; its port is pinned to the node's own key, nothing else
    assert "ansible_port: 2222" in fault_lab.inventory.read_text()
    pins = [line.split() for line in fault_lab.known_hosts.read_text().splitlines()]
    assert [p[1:] for p in pins if p[0] == f"[{address}]:2222"] == [p[1:] for p in pins if p[0] == address]
    assert len([p for p in pins if p[0] == f"[{address}]:2222"]) == 1

    first = cli("deploy", str(play), "-i", inv, "--format", "json", check_rc=0).json()
    assert [first["hosts"][h]["changed"] for h in ("lab-001", "lab-002", "lab-003")] == [SLOW_FILES + 2] * 3
    # the link is slow: lab-002's run took many 300 ms round trips (a lower bound only: delays only add)
    assert first["hosts"]["lab-002"]["elapsed"] > 1.5, first["hosts"]
    second = cli("deploy", str(play), "-i", inv, "--format", "json", check_rc=0).json()
    assert totals(second, "changed") == 0
    for node in fault_lab.nodes():
        held = [hashlib.sha256(node.path(f"/var/lib/t-link/f{i}").read_bytes()).hexdigest()
                for i in range(SLOW_FILES)]
        assert held == digests, node.name  # every file whole
        assert not [p.name for p in node.path("/var/lib/t-link").iterdir() if ".zeta-tmp." in p.name]
    ledger.record("slow link: 150 ms each way and 64 KiB/s to one node (a delaying proxy in front of its sshd)",
                  "the deploy converges: first run changes, second none, every file whole",
                  f"{SLOW_FILES + 2} changes in {first['hosts']['lab-002']['elapsed']:.1f}s over the link "
                  f"(direct nodes {first['hosts']['lab-001']['elapsed']:.1f}s), then 0; {SLOW_FILES} files whole")

    # a slower link (in place: the proxy reloads) and a connect deadline shorter than its SSH handshake
    fault_lab.slow("lab-002", 400, 64)
    assert fault_lab.link("lab-002") == replace(link, delay_ms=400)  # the same proxy process
    timed = cli("deploy", str(play), "-i", inv, "--connect-timeout", "1", "--format", "json")
    assert timed.returncode == 3, timed
    hosts = timed.json()["hosts"]
    assert hosts["lab-002"]["status"] == "unreachable", hosts["lab-002"]
    assert f"no answer from {address}:2222 within 1s" in hosts["lab-002"]["error"], hosts["lab-002"]
    assert hosts["lab-001"]["status"] == hosts["lab-003"]["status"] == "ok"
    ledger.record("slow link: 400 ms each way, --connect-timeout 1 (shorter than its SSH handshake)",
                  "that host unreachable with a clear error, the others finish",
                  f"lab-002 unreachable: {hosts['lab-002']['error']!r}; the others ok")

    cli("lab", "fast", "--dir", str(fault_lab.dir), "lab-002", check_rc=0)
    assert not link.alive() and fault_lab.link("lab-002") is None
    assert "ansible_port: 2222" not in fault_lab.inventory.read_text()
    assert f"[{address}]:2222" not in fault_lab.known_hosts.read_text()
    again = cli("deploy", str(play), "-i", inv, "--format", "json", check_rc=0).json()
    assert totals(again, "changed") == 0

    # `lab down` ends the lab's proxies too, by pid
    other = fault_lab.slow("lab-003", 10)
    assert other.alive()
    fault_lab.down()
    assert not other.alive()
    assert json.loads(fault_lab.state_file.read_text())["links"] == []
