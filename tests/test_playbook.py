"""Playbook loading and planning: every bad input names its file and line, before any connection."""

from __future__ import annotations

from pathlib import Path

import pytest

from zetactl.engine.fleet import FleetSettings
from zetactl.errors import BadInput
from zetactl.inventory import load_inventory
from zetactl.plan import Selection, build_plan
from zetactl.playbook import load_playbook
from zetactl.waves import make_waves

ROOT = Path(__file__).resolve().parent.parent
INVENTORY = "all:\n  hosts:\n    a: {ansible_host: 127.0.0.1}\n  children:\n    cp:\n      hosts:\n        b:\n"


def plan_for(tmp_path: Path, playbook: str, files: dict[str, str] | None = None,
             selection: Selection | None = None) -> object:
    (tmp_path / "hosts.yml").write_text(INVENTORY)
    for name, text in (files or {}).items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    (tmp_path / "play.yml").write_text(playbook)
    return build_plan(load_playbook(tmp_path / "play.yml"), load_inventory(tmp_path / "hosts.yml"),
                      selection or Selection())


@pytest.mark.parametrize(("text", "line", "message"), [
    ("hosts: all\nsteps:\n  - directory: {path: /x\n", 4, "invalid YAML"),
    ("hosts: all\nsteps:\n  - name: a\n    frobnicate: {path: /x}\n", 4, "unknown step kind 'frobnicate'"),
    ("hosts: all\nsteps:\n  - directory: {path: /x, colour: red}\n", 3, "unknown option 'colour'"),
    ("hosts: all\nsteps:\n  - name: x\n    directory: {path: /x}\n    notify: nope\n", 5, "no handler named 'nope'"),
    ("hosts: all\ntasks:\n  - directory: {path: /x}\n", 2, "did you mean 'steps'"),
    ("hosts: all\nsteps:\n  - directory: {path: /x}\n    file: {path: /y, content: z}\n", 3, "exactly one kind"),
    ("hosts: all\nsteps:\n  - directory: {mode: '0755'}\n", 3, "missing required option 'path'"),
    ("hosts: all\nsteps:\n  - directory: {path: relative}\n", 3, "path must be absolute"),
    ("hosts: all\nsteps:\n  - directory: {path: /x, mode: '0999'}\n", 3, "mode must be octal"),
    ("hosts: all\nsteps:\n  - systemd: {unit: x, state: sleeping}\n", 3, "must be one of"),
    ("hosts: all\nsteps:\n  - file: {path: /x, content: '{{ nope }}'}\n", 3, "'nope' is undefined"),
    ("hosts: all\nsteps:\n  - file: {path: /x, content: '{{ a'}\n", 3, "template syntax error"),
    ("hosts: all\nsteps:\n  - name: w\n    directory: {path: /x}\n    when: ghost > 1\n", 5, "'ghost' is undefined"),
    ("- hosts: all\n  steps: []\n", 1, "not a list of plays"),
    ("hosts: all\nsteps:\n  - file: {path: /x, content: a, source: b}\n", 3, "exactly one of"),
    # Python's own errors inside an expression are bad input too (never a traceback)
    ("hosts: all\nsteps:\n  - file: {path: /x, content: \"{{ 'a' + 1 }}\"}\n", 3, "TypeError"),
    ("hosts: all\nsteps:\n  - name: w\n    directory: {path: /x}\n    when: \"'a' + 1\"\n", 5, "when: TypeError"),
])
def test_bad_playbooks_name_file_and_line(tmp_path: Path, text: str, line: int, message: str) -> None:
    with pytest.raises(BadInput) as caught:
        plan_for(tmp_path, text)
    assert caught.value.file == str(tmp_path / "play.yml"), caught.value
    assert caught.value.line == line, caught.value
    assert message in caught.value.message


def test_undefined_variable_in_a_template_names_the_template_line(tmp_path: Path) -> None:
    playbook = "hosts: all\nsteps:\n  - template: {src: t.j2, dest: /etc/t}\n"
    with pytest.raises(BadInput) as caught:
        plan_for(tmp_path, playbook, {"templates/t.j2": "line one\nvalue = {{ missing_var }}\n"})
    assert caught.value.file == str(tmp_path / "templates" / "t.j2")
    assert caught.value.line == 2
    assert "missing_var" in caught.value.message


def test_when_tags_loop_and_precedence(tmp_path: Path) -> None:
    playbook = """\
hosts: all
vars: {colour: blue, shade: "{{ colour }}-ish"}
steps:
  - name: everyone
    file: {path: /etc/c, content: "{{ shade }} {{ inventory_hostname }}"}
    tags: [paint]
  - name: cp only
    directory: {path: /etc/cp}
    when: "'cp' in group_names"
  - name: per item
    directory: {path: "/etc/{{ item }}"}
    loop: [one, two]
    tags: [dirs]
  - name: always
    directory: {path: /etc/always}
    tags: [always]
"""
    plan = plan_for(tmp_path, playbook, selection=Selection(extra_vars={"colour": "red"}))
    by_host = {hp.host.name: hp for hp in plan.hosts}  # type: ignore[attr-defined]
    a, b = by_host["a"], by_host["b"]
    assert a.steps[0].step.data == b"red-ish a"  # -e beats the playbook's vars; vars resolve vars
    assert a.steps[1].skip_reason and "is false" in a.steps[1].skip_reason
    assert b.steps[1].step is not None
    assert [s.step.target() for s in a.steps[2:4]] == ["/etc/one", "/etc/two"]
    assert [s.name for s in a.steps[2:4]] == ["per item (one)", "per item (two)"]

    tagged = plan_for(tmp_path, playbook, selection=Selection(tags=frozenset({"paint"})))
    a = {hp.host.name: hp for hp in tagged.hosts}["a"]  # type: ignore[attr-defined]
    assert a.steps[0].step.data == b"blue-ish a"
    assert [s.skip_reason for s in a.steps[1:4]] == ["not in --tags"] * 3
    assert a.steps[4].step is not None  # tagged always


def test_unknown_host_in_limit(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="unknown host or group 'zz'"):
        plan_for(tmp_path, "hosts: all\nsteps:\n  - directory: {path: /x}\n", selection=Selection(limit="zz"))


def test_shipped_playbooks_plan_against_the_example_inventory() -> None:
    inventory = load_inventory(ROOT / "inventory" / "hosts.yml")
    for path in sorted((ROOT / "playbooks").glob("*.yml")):
        plan = build_plan(load_playbook(path), inventory, Selection())
        assert plan.hosts, path


@pytest.mark.parametrize(("serial", "hosts", "waves"), [
    ((), 5, [5]),
    (("2",), 5, [2, 2, 1]),
    (("1", "50%"), 6, [1, 3, 2]),
    (("20%",), 3, [1, 1, 1]),
])
def test_waves(serial: tuple[str, ...], hosts: int, waves: list[int]) -> None:
    names = [f"h{i}" for i in range(hosts)]
    made = make_waves(names, serial)
    assert [len(w) for w in made] == waves
    assert [h for w in made for h in w] == names


@pytest.mark.parametrize("fleet", [FleetSettings(serial=("x",)), FleetSettings(serial=("0",)),
                                   FleetSettings(max_fail="150%"), FleetSettings(max_fail="-1")])
def test_bad_waves_and_budgets_are_bad_input(fleet: FleetSettings) -> None:
    with pytest.raises(BadInput):
        fleet.validate()


def test_a_python_error_in_a_variable_is_bad_input(tmp_path: Path) -> None:
    playbook = "hosts: all\nvars:\n  broken: \"{{ 'a' + 1 }}\"\nsteps:\n  - directory: {path: /x}\n"
    with pytest.raises(BadInput, match="variable 'broken': TypeError"):
        plan_for(tmp_path, playbook)
