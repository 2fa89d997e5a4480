"""The remote scripts, run by a real local `sh` on a real filesystem (no SSH needed)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from zetactl.engine import remote
from zetactl.steps import KINDS, Change, NoChange, Step, Where

WHERE = Where("play.yml", 1)


def sh(script: str) -> str:
    return subprocess.run(["sh"], input=script, capture_output=True, text=True, check=True).stdout


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


def _one_path_observation(path: str, sha: bool) -> dict[str, str]:
    """What the one-path helpers (zp_stat, zp_sha) say of a path: the batch must say the same."""
    from zetactl.steps.base import q
    from zetactl.steps.probes import PRELUDE

    observed: dict[str, str] = {}
    script = f"{PRELUDE}\nzp_stat {q(path)}\n" + (f"zp_sha {q(path)}\n" if sha else "")
    for line in sh(script).splitlines():
        name, _, value = line.partition(" ")
        observed.setdefault(name, value.split(" ")[0] if name == "sha256" else value)
    return observed


def test_the_batched_path_probe_says_what_the_one_path_helpers_say(tmp_path: Path) -> None:
    import os

    odd = tmp_path / "a dir with 'quotes' -> and spaces"
    odd.mkdir(mode=0o750)
    (odd / "file").write_text("content\n")
    (odd / "empty").write_text("")
    (odd / "link").symlink_to("/some where -> else")
    (odd / "dirlink").symlink_to(odd)
    (odd / "tab\tname").write_text("t")
    (odd / "back\\slash").write_text("b")
    (odd / "new\nline").write_text("n")
    os.mkfifo(odd / "fifo")  # never read: sha256sum of a FIFO would block
    names = ["file", "empty", "link", "dirlink", "tab\tname", "back\\slash", "new\nline", "fifo", "missing"]
    steps = [make("file", path=str(odd / n), content="x") for n in names]
    steps.append(make("directory", path=str(odd)))
    steps.append(make("line_in_file", path=str(odd / "file"), line="x"))
    items = list(enumerate(steps))
    script = remote.probe_script(items)
    assert script.count("zp_stats ") == 1 and script.count("zp_shas ") == 1
    observed = remote.parse_probe(sh(script), items)
    for key, step in items:
        wanted = step.probe_path()
        assert wanted is not None
        expected = _one_path_observation(*wanted)
        got = {k: v.split(" ")[0] if k == "sha256" else v for k, v in observed[key].items() if k != "content"}
        assert got == expected, (wanted[0], got, expected)
    assert observed[2]["target"] == "/some where -> else"
    assert observed[0]["sha256"] == __import__("hashlib").sha256(b"content\n").hexdigest()
    assert "sha256" not in observed[7]  # the FIFO was not read
    assert observed[8] == {"type": "absent"}


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
    """A connection lost mid-transfer must never run a cut-off line (`rm -rf -- /srv/data/old` -> `/srv`)."""
    from zetactl.transport.ssh import COLLECTED_SH, CUT_SHORT, GUARDED_SH, whole

    for shell in (GUARDED_SH, COLLECTED_SH):
        keep = tmp_path / "data"
        (keep / "old").mkdir(parents=True)
        (tmp_path / "ran").unlink(missing_ok=True)
        script = whole(f"echo started > {tmp_path}/ran\nrm -rf -- {keep}/old\n")
        guarded = ["sh", "-c", f"exec {shell}"]
        cut = script.index("/old")  # the stream ends right after `rm -rf -- <keep>`
        for end in (cut, len(script) - 2, len(script) // 3, 0):  # (only the final newline may go: $() drops it)
            proc = subprocess.run(guarded, input=script[:end], capture_output=True, text=True)
            assert proc.returncode == CUT_SHORT and "cut short" in proc.stderr
            assert keep.is_dir() and not (tmp_path / "ran").exists()
        proc = subprocess.run(guarded, input=script, capture_output=True, text=True)
        assert proc.returncode == 0 and (tmp_path / "ran").exists() and not (keep / "old").exists()


def test_a_collected_script_answers_its_output_whole_with_its_exit_status() -> None:
    """COLLECTED_SH sends the script's stdout in one write at its end: byte for byte (trailing newlines kept),
    with the script's exit status, also when the script ends with `exit`."""
    from zetactl.transport.ssh import COLLECTED_SH, whole

    collected = ["sh", "-c", f"exec {COLLECTED_SH}"]
    for body, out, rc in (("printf 'a\\n\\nb\\n\\n\\n'", "a\n\nb\n\n\n", 0), ("printf 'x'; exit 3", "x", 3),
                          ("echo one; false", "one\n", 1), (":", "", 0), ("printf 'tail x'", "tail x", 0)):
        proc = subprocess.run(collected, input=whole(body), capture_output=True, text=True)
        assert (proc.stdout, proc.returncode) == (out, rc), body


def test_the_lock_session_answers_each_script_whole_then_writes_the_marker(tmp_path: Path,
                                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """The lock channel's loop, run by a local sh: each framed script's stdout comes back byte for byte (trailing
    newlines kept) before its END line with its exit status, stderr after an ERR line, and the marker lands."""
    state = tmp_path / "state"
    monkeypatch.setattr(remote, "STATE_DIR", str(state))
    monkeypatch.setattr(remote, "LOCK_FILE", str(state / "lock"))
    monkeypatch.setattr(remote, "MARKER", str(state / "last-run"))
    scripts = ["printf '\\036P 1\\nmode 644\\n\\n\\n'", "echo out; echo err >&2; exit 3", "printf 'x'", ":"]
    feed = "".join(remote.framed(s) for s in scripts) + remote.END_OF_SCRIPTS + "run_id=r1\noutcome=ok\nend\n"
    proc = subprocess.run(["sh", "-c", remote.lock_command(5, "test run")], input=feed, capture_output=True,
                          text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    first, rest = proc.stdout.split("\n", 1)
    assert first == "locked"
    answers = rest.split(remote.RS + "END ")
    bodies, statuses = [answers[0]], []
    for answer in answers[1:]:
        status, _, body = answer.partition("\n")
        statuses.append(status)
        bodies.append(body)
    assert statuses == ["0", "3", "0", "0"]
    assert bodies[:4] == ["\036P 1\nmode 644\n\n\n", "out\n" + remote.RS + "ERR\nerr\n", "x", ""]
    assert (state / "last-run").read_text() == "run_id=r1\noutcome=ok\nend\n"
    assert (state / "lock.owner").read_text() == "test run\n"
