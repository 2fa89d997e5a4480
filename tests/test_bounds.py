"""Bad input is bounded: each is refused with exit 4 and one line, fast and in little memory, before any host."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
INVENTORY = "all:\n  hosts:\n    n1: {ansible_host: 127.0.0.1}\n"
MEASURE = """
import resource, subprocess, sys, time
started = time.monotonic()
proc = subprocess.run(sys.argv[1:], capture_output=True, text=True)
print(proc.returncode, round(time.monotonic() - started, 3), resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
sys.stderr.write(proc.stderr)
"""


def refused(tmp_path: Path, *args: str) -> tuple[str, float, int]:
    """Run a zetactl command in a process of its own: (its one stderr line, seconds, peak memory in MiB)."""
    proc = subprocess.run([sys.executable, "-c", MEASURE, sys.executable, "-m", "zetactl", *args],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path,
                          env={**os.environ, "ZETACTL_HOME": str(tmp_path / "home")})
    code, seconds, peak = proc.stdout.split()
    lines = proc.stderr.strip().splitlines()
    assert code == "4" and len(lines) == 1 and lines[0].startswith("error: "), (code, proc.stderr[-1500:])
    return lines[0], float(seconds), int(peak) // 1024


def write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


CASES = {
    "nesting 300 deep": ("hosts: all\nvars: {deep: " + nested(300) + "}\nsteps: [{command: {cmd: x}}]\n",
                         "nested deeper than 64"),
    "a 5000-digit mode": ("hosts: all\nsteps:\n  - directory: {path: /tmp/x, mode: " + "7" * 5000 + "}\n",
                          "cannot be read"),
    "a lone surrogate in content": ('hosts: all\nsteps:\n  - file: {path: /tmp/x, content: "\\ud800"}\n',
                                    "not valid Unicode"),
    "a lone surrogate in a path": ('hosts: all\nsteps:\n  - directory: {path: "/tmp/\\ud800"}\n',
                                   "not valid Unicode"),
    "a number beyond 64 bits": ("hosts: all\nvars: {n: " + "9" * 30 + "}\nsteps: [{command: {cmd: x}}]\n",
                                "beyond 64 bits"),
    "an alias bomb in a loop": ("hosts: all\nvars:\n  a: &a [x, x, x, x, x, x, x, x, x, x]\n"
                                + "".join(f"  {c}: &{c} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n"
                                          for p, c in zip("abcdefgh", "bcdefghi", strict=True))
                                + "steps:\n  - command: {cmd: 'echo {{ item }}'}\n    loop: '{{ i }}'\n",
                                "expands to more than 1,000,000 values"),
    "a loop of 20000 items": ("hosts: all\nsteps:\n  - command: {cmd: 'echo {{ item }}'}\n"
                              "    loop: '{{ range(20000) | list }}'\n", "loops at most 10,000 times"),
    "a template rendering gigabytes": ("hosts: all\nsteps:\n  - file: {path: /tmp/x, content: \"{{ 'x' * 10**9 }}\"}\n",
                                       "more than 64 MiB"),
    "a template looping into gigabytes": ("hosts: all\nsteps:\n  - file: {path: /tmp/x, content: \"{% for i in "
                                          "range(100000) %}{% for j in range(100000) %}xxxxxxxxxxxxxxxx{% endfor %}"
                                          "{% endfor %}\"}\n", "more than 64 MiB"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_is_refused_in_one_line_fast_and_small(case: str, tmp_path: Path) -> None:
    text, needle = CASES[case]
    inventory = write(tmp_path, "hosts.yml", INVENTORY)
    play = write(tmp_path, "play.yml", text)
    line, seconds, peak = refused(tmp_path, "plan", play, "-i", inventory)
    assert needle in line and f"{play}" in line, line
    assert seconds < 3.0 and peak < 200, (case, seconds, peak)  # under a second here, with room for a busy CI


def test_a_50_mb_playbook_is_refused_before_it_is_parsed(tmp_path: Path) -> None:
    inventory = write(tmp_path, "hosts.yml", INVENTORY)
    play = tmp_path / "big.yml"
    with play.open("w") as out:
        out.write("hosts: all\nsteps:\n")
        line = "  - command: {cmd: 'true'}\n"
        out.write(line * (50 * 2**20 // len(line)))
    started = time.monotonic()
    message, seconds, peak = refused(tmp_path, "plan", str(play), "-i", inventory)
    assert "a playbook or an inventory is at most 16 MiB" in message and time.monotonic() - started < 5
    assert seconds < 3.0 and peak < 200, (seconds, peak)


def test_inventories_and_extra_vars_are_bounded_too(tmp_path: Path) -> None:
    play = write(tmp_path, "play.yml", "hosts: all\nsteps:\n  - command: {cmd: 'true'}\n")
    deep = write(tmp_path, "deep.yml", "all:\n  vars: {x: " + nested(300) + "}\n  hosts: {n1: {}}\n")
    assert "nested deeper than 64" in refused(tmp_path, "plan", play, "-i", deep)[0]
    surrogate = write(tmp_path, "bad.yml", 'all:\n  hosts:\n    n1: {zeta_cluster: "\\udcff"}\n')
    assert "not valid Unicode" in refused(tmp_path, "plan", play, "-i", surrogate)[0]
    inventory = write(tmp_path, "hosts.yml", INVENTORY)
    assert "cannot be read" in refused(tmp_path, "plan", play, "-i", inventory, "-e", "n=" + "9" * 5000)[0]
    assert "beyond 64 bits" in refused(tmp_path, "plan", play, "-i", inventory, "-e", "n=" + "9" * 30)[0]
    extra = write(tmp_path, "extra.yml", "x: " + nested(300) + "\n")
    assert "nested deeper than 64" in refused(tmp_path, "plan", play, "-i", inventory, "-e", f"@{extra}")[0]


def test_file_source_is_confined_to_the_playbook_folder_like_template_src(tmp_path: Path) -> None:
    inventory = write(tmp_path, "hosts.yml", INVENTORY)
    secret = tmp_path / "outside.txt"
    secret.write_text("not for nodes")
    plays = tmp_path / "plays"
    plays.mkdir()
    (plays / "ok.txt").write_text("fine")
    (plays / "leak.txt").symlink_to(secret)
    for source in ("../outside.txt", str(secret), "leak.txt", "../../../../etc/shadow"):
        for kind, key in (("file", "source"), ("template", "src")):
            dest = "path" if kind == "file" else "dest"
            play = write(plays, "play.yml", f"hosts: all\nsteps:\n  - {kind}: {{{dest}: /tmp/x, {key}: '{source}'}}\n")
            line = refused(tmp_path, "plan", play, "-i", inventory)[0]
            assert "is outside the playbook's folder" in line or "not found next to the playbook" in line, line
            assert "put the file next to the playbook" in line and "not for nodes" not in line
    play = write(plays, "play.yml", "hosts: all\nsteps:\n  - file: {path: /tmp/x, source: ok.txt}\n")
    done = subprocess.run([sys.executable, "-m", "zetactl", "plan", play, "-i", inventory], capture_output=True,
                          text=True, cwd=tmp_path, env={**os.environ, "ZETACTL_HOME": str(tmp_path / "home")})
    assert done.returncode == 0, done.stderr


def test_controller_state_is_private_and_an_old_state_folder_is_made_private(tmp_path: Path) -> None:
    from zetactl import paths

    home = tmp_path / "home"
    (home / "runs" / "20260101-000000-abcd").mkdir(parents=True, mode=0o755)
    home.chmod(0o755)
    old = home / "runs" / "20260101-000000-abcd" / "result.json"
    old.write_text("{}")
    old.chmod(0o644)
    (home / "lab" / "nodes").mkdir(parents=True)
    (home / "lab" / "nodes" / "keep.conf").write_text("x")
    (home / "lab" / "nodes" / "keep.conf").chmod(0o644)
    os.environ["ZETACTL_HOME"] = str(home)
    try:
        paths._checked.clear()
        assert paths.state_dir() == home
    finally:
        del os.environ["ZETACTL_HOME"]
        paths._checked.clear()
    assert oct(home.stat().st_mode)[-3:] == "700"
    assert oct((home / "runs").stat().st_mode)[-3:] == "700" and oct(old.stat().st_mode)[-3:] == "600"
    assert oct((home / "lab" / "nodes" / "keep.conf").stat().st_mode)[-3:] == "644"  # the lab's: left alone
    from zetactl.fileio import write_atomic

    write_atomic(home / "new.json", "{}")
    assert oct((home / "new.json").stat().st_mode)[-3:] == "600"
