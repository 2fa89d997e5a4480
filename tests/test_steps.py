"""Step decisions as data: what was observed -> what to do, one case per edge (pyinfra style)."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path
from typing import Any

import pytest

from zetactl.steps import KINDS, Change, NoChange, Step, Where

WHERE = Where("play.yml", 1)


def step(kind: str, payload: bytes | None = None, want_content: bool = False, **args: Any) -> Step:
    return KINDS[kind](args, WHERE, payload=payload, want_content=want_content)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


FILE = {"type": "file", "mode": "644", "owner": "root", "group": "root"}


def show(**properties: str) -> dict[str, str]:
    """What the systemd step's probe reads: `systemctl show` lines in its field `show`."""
    return {"show": "\n".join(f"{k}={v}" for k, v in properties.items())}
CASES: list[tuple[Step, dict[str, str], type, str]] = [
    (step("directory", path="/etc/z"), {"type": "absent"}, Change, "create directory"),
    (step("directory", path="/etc/z", mode="0755"), {"type": "directory", "mode": "755"}, NoChange, "exists"),
    (step("directory", path="/etc/z", mode="0700"), {"type": "directory", "mode": "755"}, Change, "mode 0755 -> 0700"),
    (step("directory", path="/etc/z"), {"type": "file"}, Change, "not a directory"),
    (step("directory", path="/etc/z", state="absent"), {"type": "absent"}, NoChange, "absent"),
    (step("directory", path="/etc/z", state="absent"), {"type": "directory"}, Change, "remove"),
    (step("file", path="/f", content="hi\n"), {"type": "absent"}, Change, "create /f"),
    (step("file", path="/f", content="hi\n"), {**FILE, "sha256": sha(b"hi\n")}, NoChange, "wanted content"),
    (step("file", path="/f", content="hi\n"), {**FILE, "sha256": sha(b"old")}, Change, "update /f"),
    (step("file", path="/f", content="hi\n", owner="zeta"), {**FILE, "sha256": sha(b"hi\n")}, Change,
     "owner root -> zeta"),
    (step("file", path="/f", payload=b"\x00bin", source="x.bin"), {**FILE, "sha256": sha(b"\x00bin")}, NoChange, ""),
    (step("symlink", path="/l", target="/t"), {"type": "link", "target": "/t"}, NoChange, "already"),
    (step("symlink", path="/l", target="/t"), {"type": "link", "target": "/old"}, Change, "was -> /old"),
    (step("symlink", path="/l", target="/t"), {"type": "file"}, Change, "is a file"),
    (step("command", cmd="make", creates="/done"), {"creates": "yes"}, NoChange, "/done exists"),
    (step("command", cmd="make", unless="test -e /x"), {"unless": "ok"}, NoChange, "unless"),
    (step("command", cmd="make"), {}, Change, "run: make"),
    (step("systemd", unit="k3s", state="started"), show(LoadState="loaded", ActiveState="active"),
     NoChange, "active"),
    (step("systemd", unit="k3s", state="started"), show(LoadState="loaded", ActiveState="failed"), Change, "start"),
    (step("systemd", unit="k3s", state="stopped"), show(LoadState="loaded", ActiveState="inactive"), NoChange, ""),
    (step("systemd", unit="k3s", state="restarted"), show(LoadState="loaded", ActiveState="active"), Change,
     "restart"),
    (step("systemd", unit="k3s", enabled=True), show(LoadState="loaded", UnitFileState="disabled"), Change,
     "enable"),
    (step("systemd", unit="k3s", enabled=True), show(LoadState="loaded", UnitFileState="static"), NoChange, ""),
    (step("systemd", unit="nope", state="started"), show(LoadState="not-found"), Change, "not found"),
]


@pytest.mark.parametrize(("the_step", "observed", "expected", "text"), CASES)
def test_decisions(the_step: Step, observed: dict[str, str], expected: type, text: str) -> None:
    decision = the_step.decide(observed)
    assert isinstance(decision, expected), decision
    shown = decision.reason if isinstance(decision, NoChange) else decision.summary
    assert text in shown


def b64(text: str) -> str:
    import base64
    return base64.b64encode(text.encode()).decode()


@pytest.mark.parametrize(("args", "old", "new"), [
    ({"line": "b = 2"}, "a = 1\n", "a = 1\nb = 2\n"),
    ({"line": "b = 2", "regexp": "^b ="}, "a = 1\nb = 1\nc = 3\n", "a = 1\nb = 2\nc = 3\n"),
    ({"line": "a = 1", "state": "absent"}, "a = 1\nb = 2\n", "b = 2\n"),
    ({"regexp": "^#", "state": "absent"}, "# x\nkeep\n# y\n", "keep\n"),
])
def test_line_in_file_edits(args: dict[str, Any], old: str, new: str, tmp_path: Path) -> None:
    target = tmp_path / "f"
    target.write_text(old)
    the_step = step("line_in_file", path=str(target), want_content=True, **args)  # --diff
    decision = the_step.decide({"type": "file", "mode": "644", "content": b64(old)})
    assert isinstance(decision, Change)
    assert (decision.diff and "+" in decision.diff) or "-" in (decision.diff or "")
    observed = {"type": "file", "mode": "644", "content": b64(old)}
    without = step("line_in_file", path=str(target), **args).decide(observed)
    assert isinstance(without, Change) and without.diff is None  # no --diff: no diff computed
    # the script writes the new content (run for real, as the node's sh would)
    subprocess.run(["sh", "-ec", decision.script.text], check=True)
    assert target.read_text() == new and oct(target.stat().st_mode)[-3:] == "644"
    # verify reads back only the file's stat and sha256 (no content): the edited bytes, the wanted attributes
    assert not the_step.verify_script()
    after = {"type": "file", "mode": "644", "owner": "root", "group": "root", "sha256": sha(target.read_bytes())}
    assert the_step.verify(after, "") is None
    assert "edited content" in (the_step.verify({**after, "sha256": sha(old.encode())}, "") or "")
    assert "not a file" in (the_step.verify({"type": "absent"}, "") or "")
    # and with the new content in place there is nothing more to do
    assert isinstance(the_step.decide({"type": "file", "mode": "644", "content": b64(new)}), NoChange)


def test_line_in_file_verify_after_an_attribute_change_expects_the_old_bytes() -> None:
    the_step = step("line_in_file", path="/f", line="a = 1", mode="0600")
    decision = the_step.decide({**FILE, "content": b64("a = 1\n")})
    assert isinstance(decision, Change) and decision.summary == "mode 0644 -> 0600"
    assert the_step.verify({**FILE, "mode": "600", "sha256": sha(b"a = 1\n")}, "") is None
    assert "mode 0644 -> 0600" in (the_step.verify({**FILE, "sha256": sha(b"a = 1\n")}, "") or "")


def test_a_new_symlink_is_made_in_one_step_and_a_changed_one_is_replaced_atomically(tmp_path: Path) -> None:
    link, old, new = tmp_path / "current", tmp_path / "a", tmp_path / "b"
    made = step("symlink", path=str(link), target=str(old)).decide({"type": "absent"})
    assert isinstance(made, Change) and "mv" not in made.script.text  # creating a link is atomic already
    subprocess.run(["sh", "-ec", made.script.text], check=True)
    assert str(link.readlink()) == str(old)
    moved = step("symlink", path=str(link), target=str(new)).decide({"type": "link", "target": str(old)})
    assert isinstance(moved, Change) and "mv -Tf" in moved.script.text  # a temp link renamed over the old one
    subprocess.run(["sh", "-ec", moved.script.text], check=True)
    assert str(link.readlink()) == str(new) and sorted(p.name for p in tmp_path.iterdir()) == ["current"]


def test_line_in_file_missing_file_needs_create(tmp_path: Path) -> None:
    assert "create: true" in step("line_in_file", path="/f", line="x").decide({"type": "absent"}).script.text  # type: ignore[union-attr]
    created = step("line_in_file", path=str(tmp_path / "f"), line="x", create=True).decide({"type": "absent"})
    assert isinstance(created, Change)
    subprocess.run(["sh", "-ec", created.script.text], check=True)
    assert (tmp_path / "f").read_text() == "x\n" and oct((tmp_path / "f").stat().st_mode)[-3:] == "644"


@pytest.mark.parametrize("content", [b"plain text\n", b"it's 100% \"quoted\" $HOME `x` \\n", b"no newline",
                                     "\u00e9t\u00e9 \u2603\n".encode(), b"bin\0ary\xff\n", b""])
@pytest.mark.parametrize("mode", [None, "0640", "0755", "0400"])
def test_written_files_hold_exact_bytes_and_mode(tmp_path: Path, content: bytes, mode: str | None) -> None:
    from zetactl.steps.base import write_file_script

    for exists in (False, True):
        target = tmp_path / f"f-{exists}"
        if exists:
            target.write_bytes(b"old")
            target.chmod(0o600)
        subprocess.run(["sh", "-ec", write_file_script(str(target), content, mode, None, None, exists=exists).text],
                       check=True)
        assert target.read_bytes() == content
        want = mode or ("0600" if exists else "0644")  # no mode given: an existing file keeps its own
        assert oct(target.stat().st_mode)[-3:] == want[-3:], (exists, mode)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f-False", "f-True"]  # no temp file left


def test_sensitive_content_never_reaches_the_diff() -> None:
    canary = "CANARY-5ecret-7d1c"
    decision = step("file", path="/f", content=canary, sensitive=True).decide({**FILE, "sha256": "0"})
    assert isinstance(decision, Change)
    assert canary not in (decision.diff or "") and canary not in decision.summary
    assert canary not in repr(decision)
