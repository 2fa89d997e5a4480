"""Fast unit tests for the rollout parts: nix filter, facts, deferred steps, serial/gate, NixOS steps, agents, exits.

No SSH, no lab, no root. Cases that need `nix-instantiate` skip without it.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import jinja2
import pytest

from zetactl.agents import FLOOR, NodeAgents, parse_status
from zetactl.engine.outcome import FAILURES, HostOutcome
from zetactl.errors import BadInput, ExitCode
from zetactl.facts import FACTS_PENDING, FactsPending, NeedsFacts, parse_facts
from zetactl.gate import DEFAULT_TIMEOUT, GateCheck, parse_check
from zetactl.inventory import load_inventory
from zetactl.plan import HostPlan, Plan, PlannedStep, Selection, build_plan
from zetactl.playbook import load_playbook
from zetactl.playbook.render import combine, to_nix
from zetactl.report import exit_code, exit_code_for
from zetactl.steps import KINDS, Change, NoChange, Step, Where
from zetactl.steps.nixos import NixosModule, NixosRebuild
from zetactl.waves import make_waves

NIX = shutil.which("nix-instantiate") or (
    "/usr/bin/nix-instantiate" if Path("/usr/bin/nix-instantiate").exists() else None)
needs_nix = pytest.mark.skipif(NIX is None, reason="nix-instantiate is not installed")
WHERE = Where("play.yml", 7)
INVENTORY = "all:\n  hosts:\n    a: {ansible_host: 127.0.0.1}\n  children:\n    cp:\n      hosts:\n        b:\n"
EMPTY_SHA = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def nix_eval(expr: str) -> Any:
    """Evaluate a Nix expression strictly and return it as Python (via --json)."""
    assert NIX is not None
    proc = subprocess.run([NIX, "--eval", "--strict", "--json", "-E", expr], capture_output=True, text=True,
                          timeout=60, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, f"nix rejected {expr!r}: {proc.stderr}"
    return json.loads(proc.stdout)


def write_play(tmp_path: Path, playbook: str, files: dict[str, str] | None = None) -> Path:
    (tmp_path / "hosts.yml").write_text(INVENTORY)
    for name, text in (files or {}).items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    (tmp_path / "play.yml").write_text(playbook)
    return tmp_path / "play.yml"


def plan_for(tmp_path: Path, playbook: str, files: dict[str, str] | None = None) -> Plan:
    path = write_play(tmp_path, playbook, files)
    return build_plan(load_playbook(path), load_inventory(tmp_path / "hosts.yml"), Selection())


def host_plan(plan: Plan, name: str) -> HostPlan:
    return next(hp for hp in plan.hosts if hp.host.name == name)


def step(kind: str, payload: bytes | None = None, **args: Any) -> Step:
    return KINDS[kind](args, WHERE, payload=payload)


# -- 1. the `nix` and `combine` filters ------------------------------------------------------------

@pytest.mark.parametrize(("value", "expected"), [
    (True, "true"), (False, "false"), (None, "null"), (0, "0"), (42, "42"), (-3, "-3"), (1.5, "1.5"),
    ([], "[ ]"), ({}, "{ }"), ([1, "a", None], '[ 1 "a" null ]'), ({"port": 8080}, "{ port = 8080; }"),
    ("otto", '"otto"'),
])
def test_to_nix_literals(value: Any, expected: str) -> None:
    assert to_nix(value) == expected


def test_to_nix_escapes_strings() -> None:
    assert to_nix('say "hi"') == r'"say \"hi\""'
    assert to_nix("a\\b") == r'"a\\b"'
    assert to_nix("${HOME}") == r'"\${HOME}"'
    assert to_nix("one\ntwo\tthree\r") == r'"one\ntwo\tthree\r"'


def test_to_nix_quotes_only_keys_that_need_it() -> None:
    text = to_nix({"plain_key": 1, "with-dash": 2, "a.b": 3, "has space": 4, "1st": 5, "q\"k": 6})
    assert "plain_key = 1;" in text
    assert "with-dash = 2;" in text
    assert '"a.b" = 3;' in text
    assert '"has space" = 4;' in text
    assert '"1st" = 5;' in text
    assert r'"q\"k" = 6;' in text


ROUND_TRIP_STRINGS = [
    "plain", 'with "double quotes"', "back\\slash and \\\\ two", "${interpolation}", "$${double dollar}",
    "a $ alone", "ends with $", "ends with \\", "line one\nline two\n", "tab\there\rcr", "''indented''",
    "unicode: grüße ✓", "",
]


@needs_nix
@pytest.mark.parametrize("text", ROUND_TRIP_STRINGS)
def test_to_nix_strings_round_trip_through_nix(text: str) -> None:
    assert nix_eval(to_nix(text)) == text


@needs_nix
def test_to_nix_structures_round_trip_through_nix() -> None:
    value = {
        "name": "otto", "enable": True, "nothing": None, "count": 3, "ratio": 0.25,
        "list": ["a", 'b"c', ["nested", 1], {"k": "v"}], "a.b": {"x y": "${z}"}, "with-dash": [],
        "1st": {}, "offset": -4,
    }
    assert nix_eval(to_nix(value)) == value


@needs_nix
@pytest.mark.parametrize("key", ["in", "if", "let", "rec", "with", "inherit", "assert", "then", "else"])
def test_to_nix_quotes_nix_keywords_as_keys(key: str) -> None:
    assert nix_eval(to_nix({key: 1})) == {key: 1}


@needs_nix
@pytest.mark.parametrize("value", [[-2], [1, -2], [-1.5]])
def test_to_nix_negative_numbers_in_lists(value: list[Any]) -> None:
    assert nix_eval(to_nix(value)) == value


@needs_nix
@pytest.mark.parametrize("value", [1e-05, 1e20])
def test_to_nix_floats_in_exponent_form(value: float) -> None:
    assert nix_eval(to_nix(value)) == value


def test_combine_later_mappings_win_shallowly_and_inputs_are_untouched() -> None:
    base = {"a": 1, "b": {"deep": 1}}
    over = {"b": {"other": 2}, "c": 3}
    merged = combine(base, over, {"c": 4})
    assert merged == {"a": 1, "b": {"other": 2}, "c": 4}
    assert base == {"a": 1, "b": {"deep": 1}} and over == {"b": {"other": 2}, "c": 3}
    assert combine() == {}


def test_combine_refuses_non_mappings() -> None:
    with pytest.raises(jinja2.TemplateError, match="expected mappings, got list"):
        combine({"a": 1}, [1, 2])  # type: ignore[arg-type]


def test_nix_and_combine_filters_in_a_playbook(tmp_path: Path) -> None:
    playbook = """\
hosts: all
vars:
  base: {name: otto, port: 80}
  extra: {port: 8080, "a.b": "${x}"}
steps:
  - name: module
    file: {path: /etc/m.nix, content: "{{ base | combine(extra) | nix }}"}
"""
    plan = plan_for(tmp_path, playbook)
    data = host_plan(plan, "a").steps[0].step.data  # type: ignore[union-attr]
    assert data.decode() == '{ name = "otto"; port = 8080; "a.b" = "\\${x}"; }'


# -- 2. facts -----------------------------------------------------------------------------------

def test_parse_facts_full() -> None:
    facts = parse_facts({
        "nixos_version": " 25.05.20250102.6df2492 (Warbler)\n", "generation": "42", "reboot_needed": "yes",
        "failed_units": "a.service  b.socket ", "current_system": "/nix/store/c-system", "hostname": "n1",
        "booted_system": "/nix/store/b", "profile_system": "/nix/store/p", "boot_id": "id",
    })
    assert facts["nixos_release"] == "25.05"
    assert facts["nixos_version"].startswith("25.05.20250102.6df2492")
    assert facts["generation"] == 42 and isinstance(facts["generation"], int)
    assert facts["reboot_needed"] is True
    assert facts["failed_units"] == ["a.service", "b.socket"]
    assert facts["current_system"] == "/nix/store/c-system"
    assert (facts["hostname"], facts["booted_system"], facts["profile_system"], facts["boot_id"]) == (
        "n1", "/nix/store/b", "/nix/store/p", "id")


@pytest.mark.parametrize(("observed", "generation", "reboot", "failed", "release"), [
    ({}, None, False, [], ""),
    ({"generation": "", "reboot_needed": "no", "failed_units": ""}, None, False, [], ""),
    ({"generation": "abc", "reboot_needed": "maybe", "failed_units": " "}, None, False, [], ""),
    ({"generation": "7", "nixos_version": "24.11.1.abc"}, 7, False, [], "24.11"),
    ({"generation": "-1", "nixos_version": "unknown"}, None, False, [], ""),
    ({"generation": "0", "reboot_needed": "yes", "failed_units": "x.service"}, 0, True, ["x.service"], ""),
])
def test_parse_facts_edges(observed: dict[str, str], generation: int | None, reboot: bool, failed: list[str],
                           release: str) -> None:
    facts = parse_facts(observed)
    assert facts["generation"] == generation
    assert facts["reboot_needed"] is reboot
    assert facts["failed_units"] == failed
    assert facts["nixos_release"] == release


def test_facts_pending_defers_every_use() -> None:
    pending = FactsPending()
    uses = [lambda: pending.generation, lambda: str(pending), lambda: bool(pending), lambda: pending["x"],
            lambda: list(pending), lambda: len(pending), lambda: pending == 1, lambda: f"{pending}"]
    for use in uses:
        with pytest.raises(NeedsFacts):
            use()
    with pytest.raises(TypeError):
        hash(pending)


def test_facts_pending_protocol_lookups_are_not_uses() -> None:
    assert hasattr(FACTS_PENDING, "__html__") is False
    assert hasattr(FACTS_PENDING, "__deepcopy__") is False
    assert getattr(FACTS_PENDING, "__missing_dunder__", "fallback") == "fallback"
    with pytest.raises(NeedsFacts):
        hasattr(FACTS_PENDING, "generation")  # a plain attribute is a use: it does not hide as False


def test_facts_pending_defers_jinja_rendering() -> None:
    env = jinja2.sandbox.ImmutableSandboxedEnvironment(undefined=jinja2.StrictUndefined)
    for text in ("{{ facts.generation }}", "{{ facts['generation'] }}", "{{ facts }}",
                 "{% if facts.reboot_needed %}x{% endif %}"):
        with pytest.raises(NeedsFacts):
            env.from_string(text).render(facts=FACTS_PENDING)
    assert env.from_string("{{ facts.generation }}").render(facts={"generation": 3}) == "3"


# -- 3. plans with facts ------------------------------------------------------------------------

FACTS_PLAYBOOK = """\
hosts: all
vars:
  gen: "{{ facts.generation }}"
  label: "gen-{{ gen }}"
steps:
  - name: uses facts
    file: {path: /etc/gen, content: "generation={{ facts.generation }}"}
  - name: reboot note
    directory: {path: /etc/reboot}
    when: facts.reboot_needed
  - name: static
    directory: {path: "/etc/{{ inventory_hostname }}"}
  - name: via variable
    file: {path: /etc/label, content: "{{ label }} on {{ inventory_hostname }}"}
  - name: per unit
    file: {path: "/etc/{{ item }}", content: "{{ item }}@{{ facts.generation }}"}
    loop: [one, two]
"""


def test_steps_reading_facts_are_deferred_and_the_rest_rendered(tmp_path: Path) -> None:
    plan = plan_for(tmp_path, FACTS_PLAYBOOK)
    for name in ("a", "b"):
        steps = host_plan(plan, name).steps
        assert [s.name for s in steps] == ["uses facts", "reboot note", "static", "via variable",
                                          "per unit (one)", "per unit (two)"]
        deferred = [s for s in steps if s.resolve is not None]
        assert [s.name for s in deferred] == ["uses facts", "reboot note", "via variable", "per unit (one)",
                                              "per unit (two)"]
        for s in deferred:
            assert s.step is None and s.skip_reason is None
        static = steps[2]
        assert static.resolve is None and static.step is not None
        assert static.step.target() == f"/etc/{name}"


def test_resolve_renders_with_the_hosts_facts(tmp_path: Path) -> None:
    plan = plan_for(tmp_path, FACTS_PLAYBOOK)
    steps = host_plan(plan, "b").steps
    facts = parse_facts({"generation": "17", "reboot_needed": "no"})
    resolved = [s.resolve(facts) for s in steps if s.resolve is not None]
    for r in resolved:
        assert isinstance(r, PlannedStep) and r.resolve is None
    uses, reboot, via_var, one, two = resolved
    assert uses.step is not None and uses.step.data == b"generation=17"  # type: ignore[attr-defined]
    assert reboot.step is None and reboot.skip_reason and "facts.reboot_needed" in reboot.skip_reason
    assert "false" in reboot.skip_reason
    assert via_var.step is not None and via_var.step.data == b"gen-17 on b"  # type: ignore[attr-defined]
    assert one.step is not None and one.step.target() == "/etc/one"
    assert one.step.data == b"one@17"  # type: ignore[attr-defined]
    assert two.step is not None and two.step.data == b"two@17"  # type: ignore[attr-defined]
    assert one.name == "per unit (one)"

    again = steps[1].resolve(parse_facts({"generation": "3", "reboot_needed": "yes"}))  # type: ignore[misc]
    assert again.step is not None and again.step.target() == "/etc/reboot" and again.skip_reason is None


def test_when_on_facts_with_tag_skip_is_not_deferred(tmp_path: Path) -> None:
    path = write_play(tmp_path, "hosts: all\nsteps:\n  - directory: {path: /x}\n    when: facts.reboot_needed\n"
                                "    tags: [never]\n")
    plan = build_plan(load_playbook(path), load_inventory(tmp_path / "hosts.yml"), Selection())
    planned = host_plan(plan, "a").steps[0]
    assert planned.resolve is None and planned.skip_reason == "tagged never"


def test_loop_over_facts_is_bad_input_at_the_loop_line(tmp_path: Path) -> None:
    playbook = ("hosts: all\nsteps:\n  - name: each failed unit\n    directory: {path: '/x/{{ item }}'}\n"
                "    loop: '{{ facts.failed_units }}'\n")
    with pytest.raises(BadInput) as caught:
        plan_for(tmp_path, playbook)
    assert caught.value.file == str(tmp_path / "play.yml")
    assert caught.value.line == 5
    assert "loop cannot use facts" in caught.value.message


def test_gate_using_facts_is_bad_input(tmp_path: Path) -> None:
    playbook = ("hosts: all\ngate:\n  - command: 'test {{ facts.generation }} -gt 0'\n"
                "steps:\n  - directory: {path: /x}\n")
    with pytest.raises(BadInput) as caught:
        plan_for(tmp_path, playbook)
    assert (caught.value.file, caught.value.line) == (str(tmp_path / "play.yml"), 3)
    assert "cannot use facts" in caught.value.message


# -- 4. serial, max_fail, gate ------------------------------------------------------------------

GOOD_STEPS = "steps:\n  - directory: {path: /x}\n"


@pytest.mark.parametrize(("head", "serial", "max_fail"), [
    ("serial: 2\n", ("2",), None),
    ("serial: '10%'\n", ("10%",), None),
    ("serial: [1, '10%', '50%']\nmax_fail: 3\n", ("1", "10%", "50%"), "3"),
    ("max_fail: '25%'\n", (), "25%"),
    ("max_fail: 0\n", (), "0"),
    ("", (), None),
])
def test_good_serial_and_max_fail_load(tmp_path: Path, head: str, serial: tuple[str, ...],
                                       max_fail: str | None) -> None:
    playbook = load_playbook(write_play(tmp_path, "hosts: all\n" + head + GOOD_STEPS))
    assert playbook.serial == serial
    assert playbook.max_fail == max_fail


def test_good_gate_loads_and_plans(tmp_path: Path) -> None:
    text = """\
hosts: all
vars: {svc: zeta-otto.service}
gate:
  - unit: zeta-otto.service
  - command: "systemctl is-active {{ svc }}"
    timeout: 30
  - http: http://127.0.0.1:8080/healthz
    expect: 204
    timeout: 2.5
""" + GOOD_STEPS
    playbook = load_playbook(write_play(tmp_path, text))
    assert [where.line for _, where in playbook.gate] == [4, 5, 7]
    plan = build_plan(playbook, load_inventory(tmp_path / "hosts.yml"), Selection())
    assert host_plan(plan, "a").gate == (
        GateCheck("unit", "zeta-otto.service", DEFAULT_TIMEOUT, None),
        GateCheck("command", "systemctl is-active zeta-otto.service", 30.0, None),
        GateCheck("http", "http://127.0.0.1:8080/healthz", 2.5, 204),
    )


@pytest.mark.parametrize("unit", ["'{{ svc }}'", "'zeta-{{ persona }}.service'"])
def test_gate_unit_names_may_be_templates(tmp_path: Path, unit: str) -> None:
    text = f"hosts: all\nvars: {{svc: zeta-otto.service, persona: otto}}\ngate:\n  - unit: {unit}\n" + GOOD_STEPS
    path = write_play(tmp_path, text)
    plan = build_plan(load_playbook(path), load_inventory(tmp_path / "hosts.yml"), Selection())
    assert host_plan(plan, "a").gate == (GateCheck("unit", "zeta-otto.service", DEFAULT_TIMEOUT, None),)


@pytest.mark.parametrize(("body", "line", "message"), [
    ("serial: 0\n", 2, "'serial' takes counts"),
    ("serial: abc\n", 2, "'serial' takes counts"),
    ("serial: '0%'\n", 2, "'serial' takes counts"),
    ("serial: [1, '10%', -5]\n", 2, "'serial' takes counts"),
    ("serial: []\n", 2, "must not be empty"),
    ("serial: true\n", 2, "'serial' takes counts"),
    ("max_fail: abc\n", 2, "'max_fail' must be a count"),
    ("max_fail: -1\n", 2, "'max_fail' must be a count"),
    ("gate: {unit: x}\n", 2, "'gate' must be a list"),
    ("gate:\n  - unit: a.service\n    command: 'true'\n", 3, "exactly one of unit, command, http"),
    ("gate:\n  - timeout: 5\n", 3, "exactly one of unit, command, http"),
    ("gate:\n  - unit: a.service\n  - unit: b.service\n    retries: 3\n", 4, "unknown key 'retries'"),
    ("gate:\n  - unit: a.service\n  - http: https://127.0.0.1/healthz\n", 4, "http:// URL"),
    ("gate:\n  - http: 'http://'\n", 3, "http:// URL"),
    ("gate:\n  - unit: a.service\n    expect: 200\n", 3, "only for http checks"),
    ("gate:\n  - http: http://h/x\n    expect: '200'\n", 3, "only for http checks"),
    ("gate:\n\n  - command: 'true'\n    timeout: 0\n", 4, "timeout must be a number"),
    ("gate:\n  - command: 'true'\n    timeout: 4000\n", 3, "timeout must be a number"),
    ("gate:\n  - command: 'true'\n    timeout: true\n", 3, "timeout must be a number"),
    ("gate:\n  - unit: ''\n", 3, "must be a non-empty string"),
    ("gate:\n  - unit: 'a b.service'\n", 3, "invalid unit name"),
    ("gate:\n  - just a string\n", 2, "each check is a mapping"),
])
def test_bad_serial_max_fail_and_gate_name_file_and_line(tmp_path: Path, body: str, line: int,
                                                          message: str) -> None:
    path = write_play(tmp_path, "hosts: all\n" + body + GOOD_STEPS)
    with pytest.raises(BadInput) as caught:
        load_playbook(path)
    assert caught.value.file == str(path), caught.value
    assert caught.value.line == line, caught.value
    assert message in caught.value.message, caught.value


def test_parse_check_direct() -> None:
    assert parse_check({"command": "  systemctl is-active k3s  "}, WHERE) == GateCheck(
        "command", "systemctl is-active k3s", DEFAULT_TIMEOUT, None)
    assert parse_check({"http": "http://[::1]:80/", "timeout": 3600}, WHERE).timeout == 3600.0
    with pytest.raises(BadInput) as caught:
        parse_check({"http": "http://h/", "expect": True}, WHERE)
    assert (caught.value.file, caught.value.line) == ("play.yml", 7)


@pytest.mark.parametrize(("serial", "sizes"), [
    (["1", "10%", "50%"], [1, 5, 25, 19]),
    (["1", "10%"], [1, 5, 5, 5, 5, 5, 5, 5, 5, 5, 4]),
    (["100%"], [50]),
    (["5", "1%"], [5] + [1] * 45),
    (["60"], [50]),
    ([], [50]),
])
def test_make_waves_ramps_over_50_hosts(serial: list[str], sizes: list[int]) -> None:
    hosts = [f"n{i:02d}" for i in range(50)]
    waves = make_waves(hosts, serial)
    assert [len(w) for w in waves] == sizes
    assert [h for w in waves for h in w] == hosts


def test_make_waves_edges() -> None:
    assert make_waves([], ["1"]) == []
    assert make_waves([], []) == []
    assert make_waves(["a", "b", "c"], ["1%"]) == [["a"], ["b"], ["c"]]  # a percentage wave is never empty
    for bad in (["0"], ["abc"], ["-1"], ["150%"], ["1", "x%"]):
        with pytest.raises(BadInput, match="--serial"):
            make_waves(["a"], bad)


# -- 5. NixOS steps -----------------------------------------------------------------------------

def test_nixos_module_maps_dest_and_content() -> None:
    module = step("nixos_module", dest="/etc/nixos/zeta.nix", content="{ }\n")
    assert isinstance(module, NixosModule)
    assert module.path == "/etc/nixos/zeta.nix"
    assert module.data == b"{ }\n"
    from_src = step("nixos_module", payload=b"{ a = 1; }\n", dest="/etc/nixos/z.nix", src="z.nix.j2")
    assert from_src.data == b"{ a = 1; }\n"  # type: ignore[attr-defined]
    assert from_src.args["source"] == "z.nix.j2"


@pytest.mark.parametrize(("args", "message"), [
    ({"dest": "/etc/nixos/zeta.conf", "content": "{ }"}, "dest must be a .nix file"),
    ({"dest": "/etc/nixos/zeta.nix.bak", "content": "{ }"}, "dest must be a .nix file"),
    ({"dest": "/etc/nixos/zeta.nix"}, "exactly one of 'src' or 'content'"),
    ({"dest": "/etc/nixos/zeta.nix", "content": "{ }", "src": "z.nix"}, "exactly one of 'src' or 'content'"),
    ({"content": "{ }"}, "missing required option 'dest'"),
    ({"dest": "relative.nix", "content": "{ }"}, "path must be absolute"),
])
def test_nixos_module_bad_options(args: dict[str, Any], message: str) -> None:
    with pytest.raises(BadInput) as caught:
        step("nixos_module", **args)
    assert message in caught.value.message
    assert (caught.value.file, caught.value.line) == ("play.yml", 7)


def test_nixos_module_absent_needs_no_content() -> None:
    module = step("nixos_module", dest="/etc/nixos/old.nix", state="absent")
    assert isinstance(module.decide({"type": "file"}), Change)
    assert isinstance(module.decide({"type": "absent"}), NoChange)


@needs_nix
def test_validate_all_names_host_line_and_column() -> None:
    good = step("nixos_module", dest="/etc/nixos/good.nix", content="{ a = 1; }\n")
    bad = step("nixos_module", dest="/etc/nixos/bad.nix", content="{\n  a = 1;\n  b = ;\n}\n")
    with pytest.raises(BadInput) as caught:
        NixosModule.validate_all([("h1", good), ("h2", good), ("h3", bad)])
    message = caught.value.message
    assert "host h3" in message
    assert "line 3, column 7" in message
    assert "/etc/nixos/bad.nix" in message and "inline content" in message
    assert "b = ;" in message
    assert (caught.value.file, caught.value.line) == ("play.yml", 7)


@needs_nix
def test_validate_all_passes_valid_modules_and_ignores_unvalidated_ones() -> None:
    modules = [
        ("h1", step("nixos_module", dest="/etc/nixos/a.nix", content="{ pkgs, ... }: { x = [ 1 2 ]; }\n")),
        ("h2", step("nixos_module", dest="/etc/nixos/b.nix", content="{ y = \"${toString 1}\"; }\n")),
        ("h3", step("nixos_module", dest="/etc/nixos/c.nix", content="{ broken", validate=False)),
        ("h4", step("nixos_module", dest="/etc/nixos/d.nix", state="absent")),
        ("h5", step("directory", path="/etc/nixos")),
    ]
    assert NixosModule.validate_all(modules) is None


def test_validate_all_without_nix_gives_a_note(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("zetactl.steps.nixos.shutil.which", lambda name: None)
    bad = step("nixos_module", dest="/etc/nixos/bad.nix", content="{ b = ; }")
    note = NixosModule.validate_all([("h1", bad)])
    assert note and "not installed" in note
    assert NixosModule.validate_all([]) is None


@needs_nix
def test_plan_refuses_a_module_with_a_syntax_error(tmp_path: Path) -> None:
    playbook = ("hosts: all\nsteps:\n  - name: mod\n    nixos_module:\n      dest: /etc/nixos/m.nix\n"
                "      src: m.nix.j2\n")
    template = "{\n  networking.hostName = \"{{ inventory_hostname }}\";\n  broken = {{ inventory_hostname }} ;;\n}\n"
    with pytest.raises(BadInput) as caught:
        plan_for(tmp_path, playbook, {"m.nix.j2": template})
    assert caught.value.file == str(tmp_path / "play.yml") and caught.value.line == 4
    assert "host a" in caught.value.message and "line 3, column" in caught.value.message
    assert "rendered from m.nix.j2" in caught.value.message


def rebuild(**args: Any) -> NixosRebuild:
    made = step("nixos_rebuild", **args)
    assert isinstance(made, NixosRebuild)
    return made


DIGEST = "ab" * 32
SYSTEM = "/nix/store/abc-nixos-system-n1-25.05"


def recorded(**values: str) -> dict[str, str]:
    """The record of the last confirmed switch as the probe reads it (field `recorded`: `key value` lines)."""
    return {"recorded": "\n".join(f"{k} {v}" for k, v in values.items())}


def test_rebuild_no_change_when_digest_and_system_match() -> None:
    decision = rebuild().decide({"digest": DIGEST, **recorded(digest=DIGEST, system=SYSTEM),
                                 "current": SYSTEM, "generation": "12"})
    assert isinstance(decision, NoChange)
    assert "generation 12" in decision.reason and DIGEST[:12] in decision.reason


@pytest.mark.parametrize(("observed", "why"), [
    ({**recorded(digest="cd" * 32, system=SYSTEM), "current": SYSTEM}, "configuration changed"),
    ({**recorded(digest=DIGEST, system=SYSTEM), "current": "/nix/store/other"}, "configuration changed"),
    ({"current": SYSTEM}, "not switched by zetactl yet"),
])
def test_rebuild_change_otherwise(observed: dict[str, str], why: str) -> None:
    decision = rebuild().decide({"digest": DIGEST, "generation": "12", **observed})
    assert isinstance(decision, Change)
    assert why in decision.summary and "switch" in decision.summary and "generation 12" in decision.summary


def test_rebuild_boot_compares_the_profile_not_the_running_system() -> None:
    observed = {"digest": DIGEST, **recorded(digest=DIGEST, profile="/nix/store/p", system=SYSTEM),
                "profile": "/nix/store/p", "current": "/nix/store/other"}
    assert isinstance(rebuild(action="boot").decide(observed), NoChange)
    assert isinstance(rebuild(action="boot").decide({**observed, "profile": "/nix/store/q"}), Change)
    assert isinstance(rebuild(action="switch").decide(observed), Change)


@pytest.mark.parametrize("digest", ["", EMPTY_SHA])
def test_rebuild_without_configuration_is_a_failing_change(digest: str) -> None:
    observed = {"digest": digest, **recorded(digest=digest, system=SYSTEM), "current": SYSTEM}
    decision = rebuild(config_dir="/srv/nixos").decide(observed)
    assert isinstance(decision, Change)
    assert "no configuration in /srv/nixos" in decision.summary
    assert "exit 1" in decision.script.text
    proc = subprocess.run(["sh", "-c", decision.script.text], capture_output=True, text=True, timeout=10)
    assert proc.returncode != 0 and "/srv/nixos" in proc.stderr


@pytest.mark.parametrize(("args", "message"), [
    ({"confirm_timeout": 1}, "confirm_timeout must be between 5 and 86400"),
    ({"confirm_timeout": 4.9}, "confirm_timeout must be between 5 and 86400"),
    ({"switch_timeout": 86401}, "switch_timeout must be between 5 and 86400"),
    ({"confirm_timeout": True}, "must be int or float"),
    ({"config_dir": "etc/nixos"}, "config_dir must be absolute"),
    ({"config_dir": "/etc/nixos\nZETA"}, "control character"),
    ({"action": "dry-run"}, "must be one of switch, test, boot"),
])
def test_rebuild_option_bounds(args: dict[str, Any], message: str) -> None:
    with pytest.raises(BadInput) as caught:
        rebuild(**args)
    assert message in caught.value.message


def test_rebuild_accepts_bounds() -> None:
    assert rebuild(confirm_timeout=5, switch_timeout=86400).args["confirm_timeout"] == 5
    made = rebuild(action="test", config_dir="/srv/cfg")
    assert made.target() == "test /srv/cfg"
    assert "/srv/cfg" in made.probe_script().text


# -- 6. agents ----------------------------------------------------------------------------------

SHOW_BLOCKS = """\
Id=zeta-otto.service
ActiveState=active
SubState=running

Id=zeta-iris.service
ActiveState=failed
SubState=failed

Id=zeta-kit.service
ActiveState=activating
SubState=start
"""


@pytest.mark.parametrize("text", [SHOW_BLOCKS, SHOW_BLOCKS.replace("\n\n", "\n"), SHOW_BLOCKS.replace("\n", "\r\n")])
def test_parse_status(text: str) -> None:
    assert parse_status(text) == {"otto": "active", "iris": "failed", "kit": "activating"}


def test_parse_status_empty_and_odd_lines() -> None:
    assert parse_status("") == {}
    assert parse_status("ActiveState=active\n") == {}  # no Id yet: nothing to attribute it to
    assert parse_status("Id=zeta-a.service\nSubState=dead\nActiveState=inactive\nnoise\n") == {"a": "inactive"}


@pytest.mark.parametrize(("control_plane", "reachable", "active", "below"), [
    (True, True, FLOOR - 1, True),
    (True, True, FLOOR, False),
    (True, True, 0, True),
    (True, False, 0, False),
    (False, True, 0, False),
])
def test_below_floor(control_plane: bool, reachable: bool, active: int, below: bool) -> None:
    agents = {f"p{i}": "active" for i in range(active)} | {"down1": "failed", "down2": "inactive"}
    node = NodeAgents("n1", control_plane, reachable=reachable, agents=agents)
    assert node.below_floor is below
    assert len(node.active) == active
    assert node.to_json()["below_floor"] is below


# -- 7. exit codes ------------------------------------------------------------------------------

@pytest.mark.parametrize("status", ["rolled-back", "failed-units", "activation-failed", "unhealthy", "failed"])
def test_failure_statuses_exit_failed(status: str) -> None:
    assert status in FAILURES
    assert exit_code_for({status}) == ExitCode.FAILED == 2
    assert exit_code_for({"ok", "changed", "reboot-required", status}) == ExitCode.FAILED
    assert exit_code_for({"unreachable", status}) == ExitCode.FAILED
    assert exit_code_for({status}, interrupted=True) == ExitCode.INTERRUPTED


@pytest.mark.parametrize(("statuses", "code"), [
    ({"reboot-required"}, ExitCode.OK),
    ({"reboot-required", "ok", "changed"}, ExitCode.OK),
    ({"reboot-required", "unreachable"}, ExitCode.UNREACHABLE),
    ({"not-run", "ok"}, ExitCode.FAILED),
    (set(), ExitCode.OK),
])
def test_other_exit_codes(statuses: set[str], code: ExitCode) -> None:
    assert exit_code_for(statuses) == code


def test_exit_code_from_outcomes() -> None:
    outcomes = {"a": HostOutcome("a", "reboot-required"), "b": HostOutcome("b", "changed")}
    assert exit_code(outcomes, False) == ExitCode.OK
    outcomes["c"] = HostOutcome("c", "rolled-back")
    assert exit_code(outcomes, False) == ExitCode.FAILED
