"""Faults of the controller and the connection: the controller SIGKILLed at random points of a run, the
connection cut while a large file is on its way, sessions refused, a node that keeps stalling.

For each: the expected outcome, and the check that nothing was lost: every managed remote file holds its
old or its new content whole, never a part; the journal reads back; `--resume` finishes the run; a fresh
run afterwards finds nothing to do; no temp file is left behind.
"""

from __future__ import annotations

import hashlib
import os
import random
import signal
import threading
import time
from pathlib import Path

from tests.conftest import Cli, needs_lab, totals, write_playbook
from tests.faults import ledger
from zetactl.journal import RunRecord
from zetactl.lab import Lab

pytestmark = [needs_lab]

FILES = 5
SIZE = 256 * 1024
SEED = 20261202


def _contents(version: str) -> list[bytes]:
    return [hashlib.sha256(f"{version}-{i}".encode()).digest() * (SIZE // 32) for i in range(FILES)]


def _playbook(tmp_path: Path, version: str) -> Path:
    for i, content in enumerate(_contents(version)):
        (tmp_path / f"{version}-{i}.bin").write_bytes(content)
    steps = ["  - directory: {path: /var/lib/t-kill}"]
    for i in range(FILES):
        steps.append(f"  - file: {{path: /var/lib/t-kill/f{i}, source: {version}-{i}.bin}}")
        if i == 2:  # something slow in the middle, done once per version
            steps.append(f"  - command: {{cmd: 'sleep 0.5; touch /var/lib/t-kill/slept-{version}', "
                         f"creates: /var/lib/t-kill/slept-{version}}}")
    return write_playbook(tmp_path, "hosts: all\nsteps:\n" + "\n".join(steps) + "\n", f"{version}.yml")


def _digests(version: str) -> list[str]:
    return [hashlib.sha256(c).hexdigest() for c in _contents(version)]


def _file_states(lab: Lab) -> list[str]:
    """Per node and file: 'A', 'B' or what else it holds (a partial file shows as 'other')."""
    a, b = _digests("A"), _digests("B")
    states = []
    for node in lab.nodes():
        for i in range(FILES):
            digest = hashlib.sha256(node.path(f"/var/lib/t-kill/f{i}").read_bytes()).hexdigest()
            states.append("A" if digest == a[i] else "B" if digest == b[i] else "other")
    return states


def _temp_files(lab: Lab, directory: str) -> list[str]:
    return [p.name for node in lab.nodes() for p in node.path(directory).iterdir() if ".zeta-tmp." in p.name]


def _journal_reads_back(cli: Cli, run_id: str) -> int:
    """Every line but a torn last one is an event; returns how many events there are."""
    path = cli.home / "runs" / run_id / "journal.jsonl"
    lines = path.read_bytes().split(b"\n")
    events = list(RunRecord(run_id, path.parent, {}).events())
    complete = [line for line in lines[:-1] if line.strip()]
    assert len(events) >= len(complete) - 1, "more than the last line of the journal is unreadable"
    return len(events)


def test_controller_killed_at_random_points_loses_nothing(fault_lab: Lab, cli: Cli, tmp_path: Path) -> None:
    inv = str(fault_lab.inventory)
    plays = {v: _playbook(tmp_path, v) for v in "AB"}
    cli("deploy", str(plays["A"]), "-i", inv, check_rc=0)
    rng = random.Random(SEED)
    kills, resumed, torn_or_mid = 0, 0, 0
    for attempt in range(8):
        version = "AB"[(attempt + 1) % 2]
        before = set(cli.run_ids())
        proc = cli.popen("deploy", str(plays[version]), "-i", inv)
        delay = rng.uniform(0.05, 2.0)
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)
        kills += 1
        assert set(_file_states(fault_lab)) <= {"A", "B"}  # each file whole: old or new, never a part
        new_runs = sorted(set(cli.run_ids()) - before)
        if new_runs:
            run_id = new_runs[0]
            events = _journal_reads_back(cli, run_id)
            torn_or_mid += int(not (cli.home / "runs" / run_id / "result.json").exists())
            result = cli("deploy", "--resume", run_id, "--format", "json", "--lock-timeout", "60")
            assert result.returncode == 0, result
            resumed += 1
            ledger_detail = f"killed after {delay:.2f}s ({events} events journaled)"
        else:
            ledger_detail = f"killed after {delay:.2f}s, before the run started"
            cli("deploy", str(plays[version]), "-i", inv, check_rc=0)
        assert set(_file_states(fault_lab)) == {version}
        again = cli("deploy", str(plays[version]), "-i", inv, "--format", "json", check_rc=0).json()
        assert totals(again, "changed") == 0
        assert not _temp_files(fault_lab, "/var/lib/t-kill")
        ledger.record("controller SIGKILL during a deploy (3 nodes, 5 x 256 KiB files and a command)",
                      "files old or new whole; journal reads back; --resume finishes; re-run changes nothing",
                      ledger_detail + "; resumed to exit 0, then 0 changes")
    assert kills == 8 and resumed >= 2 and torn_or_mid >= 1  # the seed puts kills inside runs, not only after


def _descendants(pid: int) -> list[tuple[int, str]]:
    """(pid, comm) of every process below `pid`."""
    children: dict[int, list[int]] = {}
    names: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        comm = stat[stat.index("(") + 1:stat.rindex(")")]
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
        names[int(entry.name)] = comm
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append((child, names[child]))
            todo.append(child)
    return found


def _argv(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")[:-1]
    except OSError:
        return []


def _bytes_read(pid: int) -> int:
    try:
        io = Path(f"/proc/{pid}/io").read_text()
    except OSError:
        return -1
    return int(next(line for line in io.splitlines() if line.startswith("rchar:")).split()[1])


def test_connection_cut_mid_transfer_keeps_the_old_file(fault_lab: Lab, cli: Cli, tmp_path: Path) -> None:
    inv = str(fault_lab.inventory)
    old, new = os.urandom(1024), os.urandom(24 * 1024 * 1024)
    for name, data in (("old.bin", old), ("new.bin", new)):
        (tmp_path / name).write_bytes(data)
    setup = write_playbook(tmp_path, "hosts: all\nsteps:\n  - directory: {path: /var/lib/t-cut}\n"
                           "  - file: {path: /var/lib/t-cut/blob, source: old.bin}\n", "old.yml")
    cli("deploy", str(setup), "-i", inv, check_rc=0)
    assert fault_lab.node("lab-001").path("/var/lib/t-cut/blob").read_bytes() == old
    play = write_playbook(tmp_path, "hosts: all\nsteps:\n  - file: {path: /var/lib/t-cut/blob, source: new.bin}\n")
    node = fault_lab.node("lab-001")
    proc = cli.popen("deploy", str(play), "-i", inv, "--format", "json")
    # the node is reading the big script (its `head -c SIZE` runs): hold that reader still, so the cut lands
    # mid-transfer whatever the machine's speed, cut lab-001's connection (kill its sshd sessions), let go
    deadline = time.monotonic() + 60
    reader = None
    while reader is None:
        assert time.monotonic() < deadline and proc.poll() is None, "the transfer was never seen in flight"
        for pid, comm in _descendants(node.pid):
            argv = _argv(pid)
            if comm == "head" and len(argv) == 3 and argv[2].isdigit() and int(argv[2]) > len(new) \
                    and 0 <= _bytes_read(pid) < int(argv[2]) // 2:  # half of it is still to come
                reader = pid
                break
        time.sleep(0.001)
    os.kill(reader, signal.SIGSTOP)
    for pid in [pid for pid, comm in _descendants(node.pid) if comm.startswith("sshd")]:
        os.kill(pid, signal.SIGKILL)
    os.kill(reader, signal.SIGCONT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 3, (out[-2000:], err[-2000:])
    import json
    hosts = json.loads(out)["hosts"]
    assert hosts["lab-001"]["status"] == "unreachable", hosts["lab-001"]
    assert {hosts["lab-002"]["status"], hosts["lab-003"]["status"]} == {"changed"}
    assert node.path("/var/lib/t-cut/blob").read_bytes() == old  # the whole old file: none of the cut script ran
    assert not _temp_files(fault_lab, "/var/lib/t-cut")
    run_id = json.loads(out)["run_id"]
    cli("deploy", "--resume", run_id, "-i", inv, check_rc=0)
    assert all(n.path("/var/lib/t-cut/blob").read_bytes() == new for n in fault_lab.nodes())
    again = cli("deploy", str(play), "-i", inv, "--format", "json", check_rc=0).json()
    assert totals(again, "changed") == 0
    ledger.record("connection cut mid-transfer (24 MiB file; the node's sshd session killed while it reads)",
                  "host unreachable (exit 3); old file whole; nothing of the cut script runs; --resume finishes",
                  f"exit 3, {hosts['lab-001']['error'][:60]}...; old file intact; resumed; re-run 0 changes")


def test_a_node_refusing_new_sessions_is_unreachable_and_untouched(fault_lab: Lab, cli: Cli, tmp_path: Path
                                                                    ) -> None:
    inv = str(fault_lab.inventory)
    play = write_playbook(tmp_path, "hosts: all\nsteps:\n  - file: {path: /etc/t-sessions, content: x}\n")
    node = fault_lab.node("lab-002")
    config = fault_lab.dir / "nodes" / "lab-002" / "upper" / "etc" / "ssh" / "sshd_config"
    original = config.read_text()
    config.write_text("MaxSessions 0\n" + original)  # logins work, every session is refused (first value wins)
    os.kill(node.pid, signal.SIGHUP)  # sshd re-reads its configuration (same pid)
    time.sleep(0.5)
    try:
        result = cli("deploy", str(play), "-i", inv, "--format", "json")
    finally:
        config.write_text(original)
        os.kill(node.pid, signal.SIGHUP)
        time.sleep(0.5)
    assert result.returncode == 3, result
    error = result.json()["hosts"]["lab-002"]["error"]
    assert "refused a new SSH session" in error and "nothing ran there" in error, error
    assert not node.path("/etc/t-sessions").exists()
    assert fault_lab.node("lab-001").path("/etc/t-sessions").exists()
    again = cli("deploy", str(play), "-i", inv, "--format", "json", check_rc=0).json()
    assert again["hosts"]["lab-002"]["changed"] == 1 and totals(again, "changed") == 1
    ledger.record("sshd refusing new sessions (MaxSessions 0)",
                  "host unreachable (exit 3) with a clear message; nothing touched; the next run finishes",
                  f"exit 3: {error}")


def test_a_node_that_keeps_stalling_still_converges(fault_lab: Lab, cli: Cli, tmp_path: Path) -> None:
    """A slow, jittery link or machine: lab-003 is frozen for 150 ms of every 250 ms for the whole run."""
    inv = str(fault_lab.inventory)
    play = _playbook(tmp_path, "A")
    stop = threading.Event()

    def stall() -> None:
        while not stop.is_set():
            fault_lab.freeze("lab-003")
            time.sleep(0.15)
            fault_lab.thaw("lab-003")
            time.sleep(0.1)

    staller = threading.Thread(target=stall, daemon=True)
    staller.start()
    try:
        started = time.monotonic()
        first = cli("deploy", str(play), "-i", inv, "--format", "json", timeout=300)
        second = cli("deploy", str(play), "-i", inv, "--format", "json", timeout=300)
        elapsed = time.monotonic() - started
    finally:
        stop.set()
        staller.join()
        fault_lab.thaw("lab-003")
    assert first.returncode == 0, first
    assert {h["status"] for h in first.json()["hosts"].values()} == {"changed"}
    assert second.returncode == 0 and totals(second.json(), "changed") == 0, second
    assert set(_file_states(fault_lab)) == {"A"}
    ledger.record("slow node (frozen 150 ms of every 250 ms during two runs)",
                  "the run waits it out: all changed, then nothing to do",
                  f"exit 0 twice in {elapsed:.1f}s; all files whole")
