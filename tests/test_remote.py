"""The remote scripts, run by a real local `sh` on a real filesystem (no SSH needed)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.nodesh import run_local
from zetactl.engine import remote
from zetactl.remote import BadAnswer, Records, Sh
from zetactl.steps import KINDS, Change, NoChange, Step, Where

WHERE = Where("play.yml", 1)


def sh(script: Sh) -> Records:
    answer = run_local(script)
    assert answer.rc == 0, answer
    return answer.records()


def make(kind: str, payload: bytes | None = None, **args: object) -> Step:
    return KINDS[kind](args, WHERE, payload=payload)


def test_probe_apply_verify_round_trip(tmp_path: Path) -> None:
    steps = [
        make("directory", path=str(tmp_path / "d"), mode="0700"),
        make("file", path=str(tmp_path / "d" / "f"), content="hello\n", mode="0640"),
        make("symlink", path=str(tmp_path / "d" / "l"), target="f"),
        make("line_in_file", path=str(tmp_path / "d" / "f"), line="more"),
    ]
    items = list(enumerate(steps))
    observed = remote.parse_probe(sh(remote.probe_script(items)), items)
    assert observed[0]["type"] == "absent" and observed[1]["type"] == "absent"
    # directory + file + symlink in one batch (line_in_file touches the same file: next batch)
    batch = [(k, s, s.decide(observed[k])) for k, s in items[:3]]
    assert all(isinstance(d, Change) for _, _, d in batch)
    results = remote.parse_apply(sh(remote.apply_script(batch)), batch)  # type: ignore[arg-type]
    for key, step, _ in batch:
        assert results[key].rc == 0, results[key].output
        assert step.verify(results[key].observed, results[key].output) is None
    assert (tmp_path / "d" / "f").read_text() == "hello\n"
    assert oct((tmp_path / "d").stat().st_mode)[-3:] == "700"
    assert oct((tmp_path / "d" / "f").stat().st_mode)[-3:] == "640"
    assert (tmp_path / "d" / "l").readlink() == Path("f")
    # line_in_file, probed now, keeps the file's mode
    fresh = remote.parse_probe(sh(remote.probe_script(items)), items)
    assert all(isinstance(s.decide(fresh[k]), NoChange) for k, s in items[:3])
    change = steps[3].decide(fresh[3])
    assert isinstance(change, Change)
    results = remote.parse_apply(sh(remote.apply_script([(3, steps[3], change)])), [(3, steps[3], change)])
    assert results[3].rc == 0
    assert (tmp_path / "d" / "f").read_text() == "hello\nmore\n"
    assert oct((tmp_path / "d" / "f").stat().st_mode)[-3:] == "640"
    assert sorted(p.name for p in (tmp_path / "d").iterdir()) == ["f", "l"]  # no temp files


def test_a_failing_change_stops_the_batch_and_reports_its_output(tmp_path: Path) -> None:
    blocker = tmp_path / "file-not-dir"
    blocker.write_text("x")
    first = make("directory", path=str(blocker))
    second = make("file", path=str(tmp_path / "never"), content="x")
    batch = [(0, first, first.decide({"type": "file"})), (1, second, second.decide({"type": "absent"}))]
    results = remote.parse_apply(sh(remote.apply_script(batch)), batch)  # type: ignore[arg-type]
    assert results[0].rc == 1 and "not a directory" in results[0].output
    assert 1 not in results  # never reached
    assert not (tmp_path / "never").exists()


def test_scripts_never_read_the_callers_stdin(tmp_path: Path) -> None:
    # a command that reads stdin must not swallow the rest of the script
    step = make("command", cmd="cat; echo ran > " + str(tmp_path / "out"))
    tail = make("file", path=str(tmp_path / "after"), content="y")
    batch = [(0, step, step.decide({})), (1, tail, tail.decide({"type": "absent"}))]
    results = remote.parse_apply(sh(remote.apply_script(batch)), batch)  # type: ignore[arg-type]
    assert results[0].rc == 0 and results[1].rc == 0
    assert (tmp_path / "after").read_text() == "y"


def test_a_flush_probes_what_follows_in_the_same_script(tmp_path: Path) -> None:
    target = tmp_path / "made-by-command"
    command = make("command", cmd=f"echo made > {target}", creates=str(target))
    follower = make("file", path=str(target), content="made\n")
    batch = [(0, command, command.decide({}))]
    output = sh(remote.apply_script(batch, [(1, follower)]))  # type: ignore[arg-type]
    assert remote.parse_apply(output, batch)[0].rc == 0  # type: ignore[arg-type]
    after = remote.parse_probe(output, [(1, follower)])
    assert set(after) == {1}  # only the follower's fresh probe, taken after the command ran
    assert isinstance(follower.decide(after[1]), NoChange)


def test_creating_a_directory_does_not_stale_the_probes_beneath_it() -> None:
    from zetactl.engine.host import stale

    made = make("directory", path="/a/b", mode="0755")
    removed = make("directory", path="/a/b", state="absent")
    assert not made.touches_below() and removed.touches_below()
    assert not stale("/a/b/f", "/a/b", made.touches_below())  # still absent after mkdir: the decision holds
    assert stale("/a", "/a/b", made.touches_below())  # mkdir -p may create the ancestor
    assert stale("/a/b", "/a/b", made.touches_below())
    assert stale("/a/b/f", "/a/b", removed.touches_below())  # rm -rf takes what is beneath
    assert stale("/x", "/", False) and not stale("/a/bc", "/a/b", True)
    assert make("file", path="/a/b/f", content="x").touches_below()


def _python_observation(path: Path, sha: bool) -> dict[str, str]:
    """What Python itself says of a path: the batch must say the same."""
    import grp
    import hashlib
    import os
    import pwd
    import stat

    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return {"type": "absent"}
    kind = ("link" if stat.S_ISLNK(st.st_mode) else "directory" if stat.S_ISDIR(st.st_mode)
            else "file" if stat.S_ISREG(st.st_mode) else "other")
    found = {"type": kind, "mode": format(stat.S_IMODE(st.st_mode), "o"), "owner": pwd.getpwuid(st.st_uid).pw_name,
             "group": grp.getgrgid(st.st_gid).gr_name, "size": str(st.st_size)}
    if kind == "link":
        found["target"] = os.fsdecode(os.readlink(path))
    if sha and kind == "file":
        found["sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


CONTROL = [chr(c) for c in [*range(1, 32), 127]]


def test_the_batched_path_probe_says_what_python_says(tmp_path: Path) -> None:
    """One stat and one sha256sum for every path a playbook can name: quotes, spaces, `->`, a backslash, UTF-8."""
    import os

    odd = tmp_path / "a dir with 'quotes' -> and spaces"
    odd.mkdir(mode=0o750)
    (odd / "file").write_text("content\n")
    (odd / "empty").write_text("")
    (odd / "link").symlink_to("/some where -> else")
    (odd / "dirlink").symlink_to(odd)
    for name in ("back\\slash", 'dq"uote', "é ü", "$(touch x)", "`id`"):
        (odd / name).write_text(name)
    os.mkfifo(odd / "fifo")  # never read: sha256sum of a FIFO would block
    names = ["file", "empty", "link", "dirlink", "back\\slash", 'dq"uote', "é ü", "$(touch x)", "`id`", "fifo",
             "missing"]
    steps: list[Step] = [make("file", path=str(odd / n), content="x") for n in names]
    steps += [make("directory", path=str(odd)), make("line_in_file", path=str(odd / "file"), line="x")]
    items = list(enumerate(steps))
    script = remote.probe_script(items)
    assert script.text.count("zp_stats ") == 1 and script.text.count("zp_shas ") == 1
    observed = remote.parse_probe(sh(script), items)
    for key, step in items:
        wanted = step.probe_path()
        assert wanted is not None
        got = {k: v for k, v in observed[key].items() if k != "content"}
        assert got == _python_observation(Path(wanted[0]), wanted[1]), wanted[0]
    assert not (tmp_path / "x").exists()


def test_link_targets_holding_any_byte_are_read_truthfully_and_cannot_forge_a_record(tmp_path: Path) -> None:
    """A node user's symlink whose target holds the record separator, a newline and a fake sha256 line is data:
    the `file` step on the path it forges still sees the file's real hash."""
    import hashlib
    import os

    motd = tmp_path / "motd"
    motd.write_text("unpatched\n")
    targets = {f"t{i}": "".join(CONTROL[i:]) + "\x1ePH\n" + "0" * 64 + f"  {motd}\n\x1eEND 0\n" for i in
               range(0, len(CONTROL), 4)}
    for name, target in targets.items():
        os.symlink(target, tmp_path / name)
    os.symlink(b"\xff\xfe not UTF-8 \x1e", os.fsencode(tmp_path / "bytes"))
    steps = [make("symlink", path=str(tmp_path / n), target="/elsewhere") for n in [*targets, "bytes"]]
    steps.append(make("file", path=str(motd), content="patched\n"))
    items = list(enumerate(steps))
    observed = remote.parse_probe(sh(remote.probe_script(items)), items)
    for key, name in enumerate(targets):
        assert observed[key]["target"] == targets[name]
    assert os.fsencode(observed[len(targets)]["target"]) == b"\xff\xfe not UTF-8 \x1e"
    assert observed[len(steps) - 1]["sha256"] == hashlib.sha256(b"unpatched\n").hexdigest()
    assert isinstance(steps[-1].decide(observed[len(steps) - 1]), Change)
    change = steps[0].decide(observed[0])
    assert isinstance(change, Change) and "\\x1ePH\\n" in change.summary  # shown, escaped


def test_the_stat_record_carries_names_with_every_control_byte(tmp_path: Path) -> None:
    """zp_stats C-quotes names itself: whatever name the controller asks about comes back exactly."""
    from zetactl.remote import sh as shell
    from zetactl.remote.frame import stat_entries

    names = [str(tmp_path / f"c{ord(c)}{c}x") for c in CONTROL] + [str(tmp_path / "back\\slash\"q")]
    for name in names:
        Path(name).write_text("x")
    records = sh(shell(Sh("zp_stats S"), *names))
    found = stat_entries(records["S"], names)
    assert sorted(found) == sorted(names) and all(e.type == "file" and e.size == "1" for e in found.values())


def test_a_barrier_in_the_batch_runs_after_the_earlier_steps_are_verified(tmp_path: Path) -> None:
    # the command removes the file the batch just wrote: the file's verify saw it written
    path = tmp_path / "written"
    written = make("file", path=str(path), content="x\n")
    remover = make("command", cmd=f"rm -f {path}")
    batch = [(0, written, written.decide({"type": "absent"})), (1, remover, remover.decide({}))]
    results = remote.parse_apply(sh(remote.apply_script(batch)), batch)  # type: ignore[arg-type]
    assert results[0].rc == 0 and results[1].rc == 0
    assert written.verify(results[0].observed, "") is None
    assert not path.exists()


def test_a_failed_change_leaves_the_earlier_steps_verified(tmp_path: Path) -> None:
    first = make("file", path=str(tmp_path / "first"), content="1\n")
    failing = make("command", cmd="exit 3")
    batch = [(0, first, first.decide({"type": "absent"})), (1, failing, failing.decide({}))]
    results = remote.parse_apply(sh(remote.apply_script(batch)), batch)  # type: ignore[arg-type]
    assert results[0].rc == 0 and first.verify(results[0].observed, "") is None
    assert results[1].rc == 3


def test_a_bare_command_needs_no_probe_and_a_creates_command_reads_one_path() -> None:
    bare = make("command", cmd="touch /x")
    creates = make("command", cmd="touch /x", creates="/x")
    unless = make("command", cmd="touch /x", unless="test -e /x")
    assert not remote.needs_probe(bare) and bare.reads() == ()
    assert remote.needs_probe(creates) and creates.reads() == ("/x",)
    assert unless.reads() == ("/",)


def test_a_script_cut_short_runs_none_of_it(tmp_path: Path) -> None:
    """A connection lost mid-transfer must never run a cut-off line (`rm -rf -- /srv/data/old` -> `/srv`): on a
    channel of its own and on the lock session alike."""
    from zetactl.remote import sh as shell
    from zetactl.remote.runner import CHANNEL, CUT_SHORT, framed, lock_command, whole

    keep = tmp_path / "data"
    script = whole(shell(Sh("echo started >"), str(tmp_path / "ran")) + Sh("\n") +
                   shell(Sh("rm -rf --"), str(keep / "old")))
    cut = script.index(b"/old")  # the stream ends right after `rm -rf -- <keep>`
    lock = ["sh", "-c", lock_command(5, "test", str(tmp_path / "state")).text]
    for end in (cut, len(script) - 2, len(script) // 3, 0):  # (only the final newline may go: $() drops it)
        for command, feed in ((["sh", "-c", CHANNEL.text], script[:end]),
                              (lock, str(len(script)).encode() + b"\n" + script[:end])):
            (keep / "old").mkdir(parents=True, exist_ok=True)
            proc = subprocess.run(command, input=feed, capture_output=True)
            assert proc.returncode == CUT_SHORT and b"cut short" in proc.stderr, (command[2][:30], end, proc)
            assert (keep / "old").is_dir() and not (tmp_path / "ran").exists()
    answer = run_local(Sh(script.decode().removesuffix("# zetactl: end of script\n")))
    assert answer.rc == 0 and (tmp_path / "ran").exists() and not (keep / "old").exists()
    assert framed(Sh("x")).startswith(str(len(whole(Sh("x")))).encode() + b"\n")


def test_an_answer_is_its_script_output_with_its_exit_status() -> None:
    """Byte for byte but the trailing newlines, which no record ends with (zf ends a record with ETX)."""
    for body, out, rc in ((r"printf 'a\n\nb\n\n\n'", b"a\n\nb", 0), ("printf 'x'; exit 3", b"x", 3),
                          ("echo one; false", b"one", 1), (":", b"", 0), (r"printf '\036END 0\nx'", b"\x1eEND 0\nx", 0),
                          ("trap 'echo gone' EXIT; zf a 'b\n'; exit 4", b"\x1ea 2\nb\n\x03gone", 4)):
        answer = run_local(Sh(body))
        assert (answer.out, answer.rc) == (out, rc), body


def test_node_bytes_cannot_forge_a_record() -> None:
    """What a script prints outside `zf` is refused as a whole; a record's value may hold anything."""
    from zetactl.remote.frame import parse

    forged = "\x1eR0 1\n0\x03\x1eEND 0"
    records = run_local(Sh("zf A0 \"$(printf 'failed\\036R0 1\\n0\\003\\036END 0\\n')\"; zf R0 1")).records()
    assert records.text("A0") == "failed" + forged and records.text("R0") == "1"
    for bad in (b"stray\n", b"\x1eR0 5\nab\x03", b"\x1eR0 1\n0\x03\x1eR0 1\n0\x03", b"\x1eR0 1\n0X",
                b"\x1eR 0 0\n\x03", b"\x1eR0 1\n0\x03 "):
        with pytest.raises(BadAnswer):
            parse(bad)


def test_a_failing_command_that_prints_a_forged_result_stays_failed(tmp_path: Path) -> None:
    evil = tmp_path / "evil"
    evil.write_bytes(b"\x1eR 0 0\n\x1eEND 0\n\x1eOUT 0 0 0\n\x1eR0 1\n0\x03\x1eA0 0\n\x03")
    failing = make("command", cmd=f"cat {evil}; exit 1")
    after = make("file", path=str(tmp_path / "after"), content="x")
    batch = [(0, failing, failing.decide({}))]
    results = remote.parse_apply(sh(remote.apply_script(batch, [(1, after)])), batch)
    assert results[0].rc == 1 and "\x1eR 0 0" in results[0].output


def test_the_lock_session_answers_each_script_then_writes_the_marker(tmp_path: Path) -> None:
    """The lock session's loop, run by a local sh: each script's stdout and stderr come back whole in one framed
    answer with its exit status, and the marker lands."""
    from zetactl.remote.frame import answer_header
    from zetactl.remote.runner import framed, lock_command, marker_lines

    state = tmp_path / "state"
    scripts = [r"zf P1 'mode 644'; printf '\n\n'", "echo out; echo err >&2; exit 3", "printf 'x'", ":"]
    feed = b"".join(framed(Sh(s)) for s in scripts) + b"0\n" + marker_lines({"run_id": "r1", "playbook": "a\nb"})
    proc = subprocess.run(["sh", "-c", lock_command(5, "test run", str(state)).text], input=feed, capture_output=True,
                          timeout=30)
    assert proc.returncode == 0, proc.stderr
    first, rest = proc.stdout.split(b"\n", 1)
    assert first == b"locked"
    answers = []
    while rest:
        header, _, rest = rest.partition(b"\n")
        status, out, err = answer_header(header + b"\n")
        answers.append((status, rest[:out], rest[out:out + err]))
        rest = rest[out + err:]
    assert answers == [(0, b"\x1eP1 8\nmode 644\x03", b""), (3, b"out", b"err"), (0, b"x", b""), (0, b"", b"")]
    assert (state / "last-run").read_text() == "run_id=r1\nplaybook=a\\nb\nend\n"
    assert (state / "lock.owner").read_text() == "test run\n"
    assert oct((state / "lock.stderr").stat().st_mode)[-3:] == "600" and not (state / "lock.err").exists()
    assert oct(state.stat().st_mode)[-3:] == "700" and oct((state / "last-run").stat().st_mode)[-3:] == "600"


def test_node_text_in_a_report_line_is_never_markup() -> None:
    """A step's output (`mv: cannot stat '[/x]'`) printed by the progress display: text, not rich markup."""
    import io

    from zetactl.engine.outcome import HostOutcome, StepRecord
    from zetactl.engine.states import State
    from zetactl.progress import RunProgress

    stream = io.StringIO()
    display = RunProgress(1, 1, stream=stream)
    display.console.force_terminal = False  # type: ignore[union-attr]
    outcome = HostOutcome("n1")
    outcome.status, outcome.error = "failed", "copy: mv: cannot stat '[/x]' [link=http://e]y[/link]"
    record = StepRecord(0, "copy", "command", False)
    record.state, record.error = State.FAILED, outcome.error
    with display:
        display.step_done("n1", record)
        display.host_done(outcome)
    assert "'[/x]' [link=http://e]y[/link]" in stream.getvalue()


def test_a_temp_file_name_cannot_be_known_beforehand(tmp_path: Path) -> None:
    """The temp file's random part comes from the controller ($$ is in `ps`), and it is made with O_EXCL."""
    from zetactl.steps.base import write_file_script

    first = write_file_script(str(tmp_path / "f"), b"x", "0600", None, None).text
    second = write_file_script(str(tmp_path / "f"), b"x", "0600", None, None).text
    assert "$$" not in first and first.split("\n")[0] != second.split("\n")[0]
    name = first.split("\n")[0].removeprefix("zt=")
    (tmp_path / "target").write_text("keep")
    Path(name).symlink_to(tmp_path / "target")  # planted at the very name: the write is refused, nothing followed
    proc = subprocess.run(["sh", "-ec", first], capture_output=True, text=True)
    assert proc.returncode != 0 and (tmp_path / "target").read_text() == "keep" and not (tmp_path / "f").exists()
