"""The remote scripts, run by a real local `sh` on a real filesystem (no SSH needed)."""

from __future__ import annotations

import subprocess
from pathlib import Path

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
    observed = remote.parse_probe(sh(remote.probe_script(items)))
    assert observed[0]["type"] == "absent" and observed[1]["type"] == "absent"
    # directory + file + symlink in one batch (line_in_file touches the same file: next batch)
    batch = [(k, s, s.decide(observed[k])) for k, s in items[:3]]
    assert all(isinstance(d, Change) for _, _, d in batch)
    results = remote.parse_apply(sh(remote.apply_script(batch))) # type: ignore[arg-type]
    for key, step, _ in batch:
        assert results[key].rc == 0, results[key].output
        assert step.verify(results[key].observed, results[key].output) is None
    assert (tmp_path / "d" / "f").read_text() == "hello\n"
    assert oct((tmp_path / "d").stat().st_mode)[-3:] == "700"
    assert oct((tmp_path / "d" / "f").stat().st_mode)[-3:] == "640"
    assert (tmp_path / "d" / "l").readlink() == Path("f")
    # line_in_file, probed now, keeps the file's mode
    fresh = remote.parse_probe(sh(remote.probe_script(items)))
    assert all(isinstance(s.decide(fresh[k]), NoChange) for k, s in items[:3])
    change = steps[3].decide(fresh[3])
    assert isinstance(change, Change)
    results = remote.parse_apply(sh(remote.apply_script([(3, steps[3], change)])))
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
    results = remote.parse_apply(sh(remote.apply_script(batch)))  # type: ignore[arg-type]
    assert results[0].rc == 1 and "not a directory" in results[0].output
    assert 1 not in results  # never reached
    assert not (tmp_path / "never").exists()


def test_scripts_never_read_the_callers_stdin(tmp_path: Path) -> None:
    # a command that reads stdin must not swallow the rest of the script
    step = make("command", cmd="cat; echo ran > " + str(tmp_path / "out"))
    tail = make("file", path=str(tmp_path / "after"), content="y")
    batch = [(0, step, step.decide({})), (1, tail, tail.decide({"type": "absent"}))]
    results = remote.parse_apply(sh(remote.apply_script(batch)))  # type: ignore[arg-type]
    assert results[0].rc == 0 and results[1].rc == 0
    assert (tmp_path / "after").read_text() == "y"


def test_a_flush_probes_what_follows_in_the_same_script(tmp_path: Path) -> None:
    target = tmp_path / "made-by-command"
    command = make("command", cmd=f"echo made > {target}", creates=str(target))
    follower = make("file", path=str(target), content="made\n")
    batch = [(0, command, command.decide({}))]
    output = sh(remote.apply_script(batch, [(1, follower)]))  # type: ignore[arg-type]
    assert remote.parse_apply(output)[0].rc == 0
    after = remote.parse_probe(output)
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
