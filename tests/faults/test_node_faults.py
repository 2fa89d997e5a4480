"""Faults against real lab nodes: killed, frozen, rekeyed, interrupted, contended, full disk."""

from __future__ import annotations

import hashlib
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from tests.conftest import Cli, needs_lab, totals, write_playbook
from zetactl.lab import Lab

pytestmark = [needs_lab]

SLOW_PLAYBOOK = """\
hosts: all
steps:
  - name: first
    file: {path: /etc/t-slow/first, content: "1\\n"}
  - name: slow
    command: {cmd: "sleep 2 && echo done > /etc/t-slow/slow", creates: /etc/t-slow/slow}
  - name: last
    file: {path: /etc/t-slow/last, content: "3\\n"}
"""
PRE = "hosts: all\nsteps:\n  - directory: {path: /etc/t-slow}\n"


def wait_for(condition: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def slow_setup(fault_lab: Lab, cli: Cli, tmp_path: Path) -> Path:
    cli("deploy", str(write_playbook(tmp_path, PRE, "pre.yml")), "-i", str(fault_lab.inventory), check_rc=0)
    return write_playbook(tmp_path, SLOW_PLAYBOOK)


def test_node_killed_mid_run_is_unreachable_and_others_finish(fault_lab: Lab, cli: Cli, tmp_path: Path) -> None:
    play = slow_setup(fault_lab, cli, tmp_path)
    proc = cli.popen("deploy", str(play), "-i", str(fault_lab.inventory), "--format", "json")
    wait_for(lambda: fault_lab.node("lab-002").path("/etc/t-slow/first").exists())
    fault_lab.stop_node("lab-002")
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 3, (out, err)
    import json
    hosts = json.loads(out)["hosts"]
    assert hosts["lab-002"]["status"] == "unreachable"
    assert hosts["lab-001"]["status"] == hosts["lab-003"]["status"] == "changed"
    assert fault_lab.node("lab-003").path("/etc/t-slow/last").read_text() == "3\n"


def test_frozen_node_hits_its_deadline_and_others_finish(fault_lab: Lab, cli: Cli, tmp_path: Path) -> None:
    play = slow_setup(fault_lab, cli, tmp_path)
    fault_lab.freeze("lab-001")  # before the run: TCP connects, then silence
    try:
        started = time.monotonic()
        result = cli("deploy", str(play), "-i", str(fault_lab.inventory), "--connect-timeout", "2",
                     "--format", "json")
        elapsed = time.monotonic() - started
    finally:
        fault_lab.thaw("lab-001")
    assert result.returncode == 3, result
    hosts = result.json()["hosts"]
    assert hosts["lab-001"]["status"] == "unreachable" and "2s" in hosts["lab-001"]["error"]
    assert hosts["lab-002"]["status"] == "changed"
    assert elapsed < 20, elapsed


def test_node_frozen_mid_run_hits_the_host_deadline(fault_lab: Lab, cli: Cli, tmp_path: Path) -> None:
    play = slow_setup(fault_lab, cli, tmp_path)
    proc = cli.popen("deploy", str(play), "-i", str(fault_lab.inventory), "--timeout", "6", "--format", "json")
    wait_for(lambda: fault_lab.node("lab-003").path("/etc/t-slow/first").exists())
    fault_lab.freeze("lab-003")
    try:
        out, err = proc.communicate(timeout=40)
    finally:
        fault_lab.thaw("lab-003")
    assert proc.returncode == 3, (out, err)
    import json
    hosts = json.loads(out)["hosts"]
    assert hosts["lab-003"]["status"] == "unreachable" and "deadline" in hosts["lab-003"]["error"]
    assert hosts["lab-001"]["status"] == "changed"


def test_changed_host_key_is_refused_until_re_pinned(fault_lab: Lab, cli: Cli, tmp_path: Path) -> None:
    play = write_playbook(tmp_path, "hosts: all\nsteps:\n  - file: {path: /etc/t-hostkey, content: x}\n")
    new_key = fault_lab.rekey("lab-002")
    result = cli("deploy", str(play), "-i", str(fault_lab.inventory), "--format", "json")
    assert result.returncode == 3, result
    error = result.json()["hosts"]["lab-002"]["error"]
    assert "CHANGED" in error and "Nothing was touched" in error
    assert not fault_lab.node("lab-002").path("/etc/t-hostkey").exists()
    assert fault_lab.node("lab-001").path("/etc/t-hostkey").exists()
    # the operator reads the fingerprint on the node's console, out of band
    pub = fault_lab.dir / "nodes" / "lab-002" / "upper" / "etc" / "ssh" / "ssh_host_ed25519_key.pub"
    fingerprint = subprocess.run(["ssh-keygen", "-lf", str(pub)], capture_output=True, text=True,
                                 check=True).stdout.split()[1]
    assert fingerprint in error  # the refusal shows what the node offers
    assert new_key.split()[1] in pub.read_text()
    wrong = cli("node", "trust", "lab-002", "--fingerprint", "SHA256:" + "A" * 43, "-i", str(fault_lab.inventory))
    assert wrong.returncode != 0 and "nothing was pinned" in wrong.stderr
    cli("node", "trust", "lab-002", "--fingerprint", fingerprint, "-i", str(fault_lab.inventory), check_rc=0)
    again = cli("deploy", str(play), "-i", str(fault_lab.inventory), "--format", "json", check_rc=0).json()
    assert again["hosts"]["lab-002"]["changed"] == 1 and totals(again, "changed") == 1


def test_unknown_host_is_refused_with_fingerprint_and_trust_command(fault_lab: Lab, cli: Cli, tmp_path: Path
                                                                     ) -> None:
    known = fault_lab.known_hosts.read_text().splitlines()
    address = fault_lab.node("lab-003").address
    fault_lab.known_hosts.write_text("\n".join(ln for ln in known if not ln.startswith(address + " ")) + "\n")
    play = write_playbook(tmp_path, "hosts: all\nsteps:\n  - file: {path: /etc/t-unknown, content: x}\n")
    result = cli("deploy", str(play), "-i", str(fault_lab.inventory))
    assert result.returncode == 3
    assert "unknown host lab-003" in result.stdout
    assert "zetactl node trust lab-003 --fingerprint SHA256:" in result.stdout
    assert not fault_lab.node("lab-003").path("/etc/t-unknown").exists()


def test_interrupt_then_resume_finishes_without_redoing(fault_lab: Lab, cli: Cli, tmp_path: Path) -> None:
    play = slow_setup(fault_lab, cli, tmp_path)
    before = set(cli.run_ids())
    proc = cli.popen("deploy", str(play), "-i", str(fault_lab.inventory))
    nodes = fault_lab.nodes()
    wait_for(lambda: all(n.path("/etc/t-slow/first").exists() for n in nodes))
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, (out, err)
    (run_id,) = set(cli.run_ids()) - before  # (run ids of one second sort by their random part)
    assert f"--resume {run_id}" in err
    assert not any(n.path("/etc/t-slow/last").exists() for n in nodes)
    first_mtimes = [n.path("/etc/t-slow/first").stat().st_mtime_ns for n in nodes]

    resumed = cli("deploy", "--resume", run_id, "--format", "json", check_rc=0).json()
    assert resumed["run_id"] == run_id
    assert all(n.path("/etc/t-slow/last").read_text() == "3\n" for n in nodes)
    assert [n.path("/etc/t-slow/first").stat().st_mtime_ns for n in nodes] == first_mtimes
    events = cli.journal(run_id)
    after = events[next(i for i, e in enumerate(events) if e.get("event") == "resume"):]
    # step 0 was not redone: its change went in one script with the interrupted command, so the resumed
    # run re-probes it (its result never came back) and finds it satisfied; nothing is applied again
    assert not [e for e in after if e.get("step") == 0 and e.get("state") in ("drifted", "applied")]
    assert [e for e in after if e.get("step") == 2 and e.get("state") == "done"]
    # and a fresh run now finds nothing to do
    again = cli("deploy", str(play), "-i", str(fault_lab.inventory), "--format", "json", check_rc=0).json()
    assert totals(again, "changed") == 0


def test_two_controllers_on_one_host_never_interleave(fault_lab: Lab, cli: Cli, tmp_path: Path) -> None:
    play = write_playbook(tmp_path, "hosts: lab-001\nsteps:\n  - name: critical section\n    command: "
                          "{cmd: 'echo start >> /var/log/t-lock.log; sleep 1; echo end >> /var/log/t-lock.log'}\n")
    procs = [cli.popen("deploy", str(play), "-i", str(fault_lab.inventory)) for _ in range(2)]
    for proc in procs:
        proc.communicate(timeout=60)
        assert proc.returncode == 0
    log = fault_lab.node("lab-001").path("/var/log/t-lock.log").read_text().split()
    assert log == ["start", "end", "start", "end"], log
    # a second controller that cannot get the lock in time fails clearly and touches nothing
    # (the holder stays in its critical section until the test lets it go: no timing assumptions)
    slow = write_playbook(tmp_path, play.read_text().replace(
        "sleep 1", "while [ ! -e /run/t-release ]; do sleep 0.05; done"), "slow.yml")
    holder = cli.popen("deploy", str(slow), "-i", str(fault_lab.inventory))
    wait_for(lambda: fault_lab.node("lab-001").path("/var/log/t-lock.log").read_text().count("start") == 3)
    waiter = cli("deploy", str(play), "-i", str(fault_lab.inventory), "--lock-timeout", "0.3", "--format", "json")
    fault_lab.node("lab-001").path("/run/t-release").write_text("")
    holder.communicate(timeout=60)
    assert holder.returncode == 0
    assert waiter.returncode == 2, waiter
    assert "locked by another controller (run " in waiter.json()["hosts"]["lab-001"]["error"]
    assert fault_lab.node("lab-001").path("/var/log/t-lock.log").read_text().split().count("start") == 3


def test_full_disk_keeps_the_old_file_whole(fault_lab: Lab, cli: Cli, tmp_path: Path) -> None:
    inv = str(fault_lab.inventory)
    small = write_playbook(tmp_path, "hosts: lab-001\nsteps:\n  - directory: {path: /run/t-full}\n"
                           "  - file: {path: /run/t-full/app.conf, content: \"old\\n\"}\n", "small.yml")
    assert cli("deploy", str(small), "-i", inv, "--format", "json", check_rc=0).json()["hosts"]["lab-001"][
        "changed"] == 2
    (tmp_path / "big.bin").write_bytes(b"N" * 2 * 1024 * 1024)
    big = write_playbook(tmp_path, "hosts: lab-001\nsteps:\n"
                         "  - file: {path: /run/t-full/app.conf, source: big.bin}\n", "big.yml")
    # fill the node's /run (a 64 MiB tmpfs) to the last block
    cli("run", "dd if=/dev/zero of=/run/filler bs=64k 2>/dev/null; df /run | tail -1", "-i", inv,
        "--limit", "lab-001")
    result = cli("deploy", str(big), "-i", inv, "--format", "json")
    assert result.returncode == 2, result
    error = result.json()["hosts"]["lab-001"]["error"]
    assert "No space left on device" in error, error
    run_dir = fault_lab.node("lab-001").path("/run/t-full")
    assert (run_dir / "app.conf").read_text() == "old\n"
    assert sorted(p.name for p in run_dir.iterdir()) == ["app.conf"]  # no temp file left behind
    cli("run", "rm -f /run/filler", "-i", inv, "--limit", "lab-001", check_rc=0)
    cli("deploy", str(big), "-i", inv, check_rc=0)
    assert (run_dir / "app.conf").stat().st_size == 2 * 1024 * 1024
    assert cli("deploy", str(big), "-i", inv, "--format", "json", check_rc=0).json()["hosts"]["lab-001"][
        "changed"] == 0


def test_readers_never_see_a_half_written_file(fault_lab: Lab, cli: Cli, tmp_path: Path) -> None:
    inv = str(fault_lab.inventory)
    contents = [bytes([65 + i]) * (3 * 1024 * 1024) for i in range(2)]
    digests = {hashlib.md5(c).hexdigest() for c in contents}
    plays = []
    for i, content in enumerate(contents):
        (tmp_path / f"v{i}.bin").write_bytes(content)
        plays.append(write_playbook(tmp_path, "hosts: lab-002\nsteps:\n  - directory: {path: /var/lib/t-atomic}\n"
                                    f"  - file: {{path: /var/lib/t-atomic/big, source: v{i}.bin}}\n", f"v{i}.yml"))
    cli("deploy", str(plays[0]), "-i", inv, check_rc=0)
    reader = cli.popen("run", "for i in $(seq 300); do md5sum < /var/lib/t-atomic/big; done", "-i", inv,
                       "--limit", "lab-002", "--format", "json")
    for round_ in range(6):
        cli("deploy", str(plays[(round_ + 1) % 2]), "-i", inv, check_rc=0)
    out, _ = reader.communicate(timeout=120)
    import json
    seen = {line.split()[0] for line in json.loads(out)["hosts"]["lab-002"]["stdout"].splitlines()}
    assert seen and seen <= digests, seen


def test_serial_waves_stop_when_the_failure_budget_is_spent(fault_lab: Lab, cli: Cli, tmp_path: Path) -> None:
    play = write_playbook(tmp_path, "hosts: all\nsteps:\n  - file: {path: /etc/t-waves, content: x}\n")
    fault_lab.stop_node("lab-001")
    result = cli("deploy", str(play), "-i", str(fault_lab.inventory), "--serial", "1", "--max-fail", "0",
                 "--format", "json")
    assert result.returncode == 2, result
    hosts = result.json()["hosts"]
    assert hosts["lab-001"]["status"] == "unreachable"
    assert hosts["lab-002"]["status"] == hosts["lab-003"]["status"] == "not-run"
    assert "failure budget" in hosts["lab-002"]["error"]
    assert not fault_lab.node("lab-002").path("/etc/t-waves").exists()
    # with a budget of one failure, the run goes on past the dead node, one host per wave
    result = cli("deploy", str(play), "-i", str(fault_lab.inventory), "--serial", "1", "--max-fail", "1",
                 "--format", "json")
    assert result.returncode == 3
    assert [h["status"] for h in result.json()["hosts"].values()] == ["unreachable", "changed", "changed"]
    events = cli.journal(result.json()["run_id"])
    assert [e["hosts"] for e in events if e.get("event") == "wave"] == [["lab-001"], ["lab-002"], ["lab-003"]]
