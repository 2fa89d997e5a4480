"""The hostile-value corpus: every field of every step kind and every command that takes a name, against lab nodes.

Each value tries to run `touch /tmp/ZETA_PWNED` (or the same in the login's home) the way shell injection would:
quotes, `$()`, backticks, `${IFS}`, `;`, `&&`, `|`, a newline; plus a leading `-`, globs, the record separator and
other control bytes, an invalid surrogate and a 4 KiB string. A value is either refused where it enters (exit 4,
one line, before any host is touched) or taken literally: files land under the literal name, links point at the
literal target, messages quote it. No marker file ever appears, on any node or on the controller.

The batches keep it quick: one plan per refused (field, value) in-process, one playbook run twice with every value
as loop items for the normal paths, one playbook per value with each error path on a node of its own.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from tests.conftest import ROOT, needs_lab
from tests.e2e.canary import node_file
from tests.faults.ledger import record
from zetactl.cli.app import app
from zetactl.lab import Lab

pytestmark = [needs_lab]

MARK = "ZETA_PWNED"
TOUCH = "touch${IFS}/tmp/" + MARK
CORPUS: dict[str, str] = {
    "quote": "it's",
    "double-quote": 'say "hi"',
    "subst": "$(" + TOUCH + ")",
    "subst-home": "$(cd;touch${IFS}" + MARK + ")",
    "backticks": "`" + TOUCH + "`",
    "ifs": "a${IFS}b",
    "break-single": "x'$(" + TOUCH + ")'y",
    "break-double": 'x"$(' + TOUCH + ')"y',
    "semicolon": "a;" + TOUCH,
    "and-or": "a&&" + TOUCH + "||" + TOUCH,
    "pipe": "a|" + TOUCH,
    "redirect": "a>/tmp/" + MARK,
    "dash": "-rf",
    "dashdash": "--help",
    "glob": "*",
    "tilde": "~root",
    "variable": "$HOME",
    "backslash": "a\\b\\",
    "unicode": "été 🙂",
    "space": "a b",
    "newline": "a\n" + TOUCH,
    "forged-record": "\x1eR0 0\n\x1eEND 0\n\x1eOUT 0 0 0\n",
    "controls": "".join(map(chr, range(1, 32))) + "\x7f",
    "surrogate": "\ud800",
    "long": "A" * 4096,
}
CONTROL = re.compile(r"[\x00-\x1f\x7f]")
BASE = "/tmp/zc"  # every path the corpus makes lives under it, on the nodes' own /tmp


def _surrogate(v: str) -> bool:
    return any(0xD800 <= ord(c) <= 0xDFFF for c in v)


# -- the rules (docs/reliability.md, "Hostile inputs"): when a value is refused where it enters ---------------
def refused_path(v: str) -> bool:
    """An absolute path: no control character, valid Unicode, 255 bytes a name, 4096 in all."""
    return bool(CONTROL.search(v)) or _surrogate(v) or len(v.encode("utf-8", "surrogatepass")) > 200


def refused_relative(v: str) -> bool:
    """A link target, `creates`, `chdir`: no control character, valid Unicode, at most 4095 bytes."""
    return bool(CONTROL.search(v)) or _surrogate(v) or len(v.encode("utf-8", "surrogatepass")) > 4000


def refused_content(v: str) -> bool:
    return _surrogate(v)


def refused_line(v: str) -> bool:
    return "\n" in v or "\r" in v or "\0" in v or _surrogate(v)


def refused_regexp(v: str) -> bool:
    if refused_content(v) or "\0" in v:
        return True
    try:
        re.compile(v)
    except re.error:
        return True
    return False


def refused_always(v: str) -> bool:
    return True  # no value of this corpus is an octal mode, a user or group name, or a sealed credential


def refused_unit(v: str) -> bool:
    """systemd.unit(5): ASCII letters, digits, `:`, `_`, `.`, `\\`, `@`, `-`; not starting with `-` or `.`."""
    return re.fullmatch(r"[A-Za-z0-9:_\\][A-Za-z0-9:_.\\@-]{0,249}", v) is None


def refused_http(v: str) -> bool:
    return bool(re.search(r"[\x00-\x20\x7f]", v)) or _surrogate(v)


# (kind, field) -> (the step's options for a value, when the value is refused)
Fields = dict[tuple[str, str], tuple[Callable[[str, str], dict[str, Any]], Callable[[str], bool]]]
FIELDS: Fields = {
    ("directory", "path"): (lambda i, v: {"path": f"{BASE}/d/{i}-{v}"}, refused_path),
    ("directory", "mode"): (lambda i, v: {"path": f"{BASE}/d/m", "mode": v}, refused_always),
    ("directory", "owner"): (lambda i, v: {"path": f"{BASE}/d/o", "owner": v}, refused_always),
    ("directory", "group"): (lambda i, v: {"path": f"{BASE}/d/g", "group": v}, refused_always),
    ("file", "path"): (lambda i, v: {"path": f"{BASE}/f/{i}-{v}", "content": "x"}, refused_path),
    ("file", "content"): (lambda i, v: {"path": f"{BASE}/f/content-{i}", "content": v}, refused_content),
    ("file", "mode"): (lambda i, v: {"path": f"{BASE}/f/m", "content": "x", "mode": v}, refused_always),
    ("file", "owner"): (lambda i, v: {"path": f"{BASE}/f/o", "content": "x", "owner": v}, refused_always),
    ("file", "group"): (lambda i, v: {"path": f"{BASE}/f/g", "content": "x", "group": v}, refused_always),
    ("template", "dest"): (lambda i, v: {"src": "t.j2", "dest": f"{BASE}/t/{i}-{v}"}, refused_path),
    ("line_in_file", "path"): (lambda i, v: {"path": f"{BASE}/l/{i}-{v}", "line": "x", "create": True},
                               refused_path),
    ("line_in_file", "line"): (lambda i, v: {"path": f"{BASE}/l/line-{i}", "line": v, "create": True},
                               refused_line),
    ("line_in_file", "regexp"): (lambda i, v: {"path": f"{BASE}/l/re-{i}", "line": "x", "regexp": v,
                                               "create": True}, refused_regexp),
    ("symlink", "path"): (lambda i, v: {"path": f"{BASE}/s/{i}-{v}", "target": "/x"}, refused_path),
    ("symlink", "target"): (lambda i, v: {"path": f"{BASE}/s/target-{i}", "target": v}, refused_relative),
    ("command", "creates"): (lambda i, v: {"cmd": 'touch -- "$ZC_CREATES"', "creates": f"{BASE}/c/{i}-{v}"},
                             refused_relative),
    ("command", "chdir"): (lambda i, v: {"cmd": "true", "chdir": f"{BASE}/c/{i}-{v}"}, refused_relative),
    ("systemd", "unit"): (lambda i, v: {"unit": v, "state": "started"}, refused_unit),
    ("nixos_module", "dest"): (lambda i, v: {"dest": f"{BASE}/n/{i}-{v}.nix", "content": "{ }\n"}, refused_path),
    ("nixos_module", "content"): (lambda i, v: {"dest": f"{BASE}/n/content-{i}.nix", "content": v,
                                                "validate": False}, refused_content),
    ("nixos_rebuild", "config_dir"): (lambda i, v: {"config_dir": f"{BASE}/r/{i}-{v}"}, refused_path),
    ("credential", "name"): (lambda i, v: {"name": v}, refused_always),
}
GATES: Fields = {
    ("gate", "unit"): (lambda i, v: {"unit": v}, refused_unit),
    ("gate", "http"): (lambda i, v: {"http": f"http://127.0.0.1:9/{v}"}, refused_http),
}


def everywhere(lab: Lab) -> list[str]:
    """Every place a marker could appear: each node's /tmp, its / and its home; the controller's."""
    places = [Path("/tmp") / MARK, Path("/root") / MARK, ROOT / MARK, Path(MARK)]
    for node in lab.nodes():
        places += [node.path(f"/tmp/{MARK}"), node.path(f"/root/{MARK}"), node.path(f"/{MARK}")]
    return [str(p) for p in places if p.exists()]


class InProcess:
    """The real CLI (zetactl.cli.app) run in this process: the same code path without a process start each. A name
    that starts with `-` is given after `--`, as a user must (else it is an option)."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.runner = CliRunner()

    def __call__(self, *args: str) -> Any:
        from zetactl import secret

        known = set(secret._REGISTRY)  # what a command's process learns ends with it, as with a process of its own
        try:
            return self.runner.invoke(app, list(args), env={"ZETACTL_HOME": str(self.home), "COLUMNS": "200"})
        finally:
            secret._REGISTRY.clear()
            secret._REGISTRY.update(known)


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("hostile")
    (work / "t.j2").write_text("x\n")
    return work


@pytest.fixture(scope="module")
def zc(work: Path) -> InProcess:
    return InProcess(work / "home")


@pytest.fixture(scope="module", autouse=True)
def no_marker_anywhere(lab: Lab) -> Iterator[None]:
    assert not everywhere(lab), everywhere(lab)
    yield
    assert not everywhere(lab), f"an injected command ran: {everywhere(lab)}"


def one_line_refusal(result: Any, *needles: str, code: int = 4) -> str:
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == code and len(lines) == 1 and lines[0].startswith(("error: ", "UNKNOWN: ")), \
        (result.exit_code, result.stderr[:600], result.stdout[:300])
    assert all(n in lines[0] for n in needles), lines[0]
    return str(lines[0])


def playbook(work: Path, name: str, document: dict[str, Any]) -> Path:
    path = work / f"{name}.yml"
    path.write_text(yaml.safe_dump(document, allow_unicode=False, width=1 << 20))
    return path


# -- 1. every field: refused at plan time (exit 4, one line, its file and line), or planned -------------------
def test_every_field_takes_a_hostile_value_literally_or_refuses_it_in_one_line(lab: Lab, zc: InProcess,
                                                                               work: Path) -> None:
    inventory = str(lab.inventory)
    tally: dict[tuple[str, str], list[int]] = {}
    for (kind, field), (options, refused) in {**FIELDS, **GATES}.items():
        counts = tally.setdefault((kind, field), [0, 0])
        for index, (vid, value) in enumerate(CORPUS.items()):
            if kind == "gate":
                document = {"hosts": "lab-001", "gate": [options(vid, value)], "steps": [{"command": {"cmd": "true"}}]}
            else:
                document = {"hosts": "lab-001", "steps": [{"name": f"{kind} {vid}", kind: options(vid, value)}]}
            path = playbook(work, f"plan-{kind}-{field}-{index}", document)
            result = zc("plan", str(path), "-i", inventory, "--limit", "lab-001", "--format", "json")
            if refused(value):
                one_line_refusal(result, f"{path}:")
                counts[1] += 1
            else:
                assert result.exit_code == 0, (kind, field, vid, result.stderr[:500])
                counts[0] += 1
    for (kind, field), (taken, refused_count) in tally.items():
        record(f"hostile: {kind}.{field}", "taken literally, or refused (exit 4, one line, file:line)",
               f"{taken + refused_count} values: {taken} taken, {refused_count} refused at plan; markers found: 0",
               runs=taken + refused_count)


# -- 2. the normal paths: every taken value as a loop item, run twice --------------------------------------
def taken(field: tuple[str, str], *, name: bool = False, tree: bool = False) -> list[dict[str, str]]:
    """The values a field takes; `name`: only those one file name can hold (no `/`: a file's parent must exist);
    `tree`: only those a path of directories can hold (mkdir -p makes the parents)."""
    refused = FIELDS[field][1]
    return [{"id": vid, "v": v} for vid, v in CORPUS.items() if not refused(v)
            and not ((name or tree) and refused_path(v)) and not (name and "/" in v)]


def test_every_taken_value_lands_literally_and_a_second_run_changes_nothing(lab: Lab, zc: InProcess,
                                                                             work: Path) -> None:
    (work / "item.j2").write_text("{{ item.v }}")
    corpus = {
        "dirs": taken(("directory", "path")), "files": taken(("file", "path"), name=True),
        "contents": taken(("file", "content")), "templates": taken(("template", "dest"), name=True),
        "lines": taken(("line_in_file", "line")), "regexps": taken(("line_in_file", "regexp")),
        "links": taken(("symlink", "path"), name=True), "targets": taken(("symlink", "target")),
        "creates": taken(("command", "creates"), name=True), "chdirs": taken(("command", "chdir"), tree=True),
        "modules": taken(("nixos_module", "dest"), name=True), "module_contents": taken(("nixos_module", "content")),
    }
    named = BASE + "/{{ item.id }}-{{ item.v }}"
    loops: list[tuple[str, dict[str, Any]]] = [
        ("dirs", {"directory": {"path": named.replace("zc/", "zc/d/"), "mode": "0750"}}),
        ("files", {"file": {"path": named.replace("zc/", "zc/f/"), "content": "{{ item.v }}"}}),
        ("contents", {"file": {"path": BASE + "/f/content-{{ item.id }}", "content": "{{ item.v }}", "mode": "0600"}}),
        ("templates", {"template": {"src": "item.j2", "dest": named.replace("zc/", "zc/t/")}}),
        ("lines", {"line_in_file": {"path": BASE + "/l/line-{{ item.id }}", "line": "{{ item.v }}", "create": True}}),
        ("regexps", {"line_in_file": {"path": BASE + "/l/re-{{ item.id }}", "line": "x", "regexp": "{{ item.v }}",
                                      "create": True}}),
        ("links", {"symlink": {"path": named.replace("zc/", "zc/s/"), "target": "{{ item.v }}"}}),
        ("targets", {"symlink": {"path": BASE + "/s/target-{{ item.id }}", "target": "{{ item.v }}"}}),
        ("creates", {"command": {"cmd": "touch -- {{ (base ~ '/c/' ~ item.id ~ '-' ~ item.v) | quote }}",
                                 "creates": named.replace("zc/", "zc/c/")}}),
        ("chdirs", {"command": {"cmd": "pwd > here", "chdir": named.replace("zc/", "zc/d/"),
                                "creates": named.replace("zc/", "zc/d/") + "/here"}}),
        ("modules", {"nixos_module": {"dest": named.replace("zc/", "zc/n/") + ".nix", "content": "{ }\n"}}),
        ("module_contents", {"nixos_module": {"dest": BASE + "/n/content-{{ item.id }}.nix", "content": "{{ item.v }}",
                                              "validate": False}}),
    ]
    steps: list[dict[str, Any]] = [{"directory": {"path": f"{BASE}/{d}"}} for d in ("", *"dftlscn")]
    steps += [{"name": name, "loop": "{{ corpus." + name + " }}", **step} for name, step in loops]
    path = playbook(work, "normal", {"hosts": "lab-001:lab-002", "vars": {"corpus": corpus, "base": BASE},
                                     "steps": steps})
    first = zc("deploy", str(path), "-i", str(lab.inventory), "--format", "json")
    assert first.exit_code == 0, first.stdout[-3000:] + first.stderr[-2000:]
    expected = 8 + sum(len(corpus[name]) for name, _ in loops)
    assert all(h["changed"] == expected for h in json.loads(first.stdout)["hosts"].values()), first.stdout[-2000:]
    second = zc("deploy", str(path), "-i", str(lab.inventory), "--format", "json")
    assert all(h["changed"] == 0 and h["status"] == "ok" for h in json.loads(second.stdout)["hosts"].values()), \
        second.stdout[-2000:]
    node = lab.node("lab-002")
    for item in corpus["contents"]:
        assert node.path(f"{BASE}/f/content-{item['id']}").read_bytes() == item["v"].encode(), item["id"]
    for item in corpus["targets"]:
        assert os.readlink(node.path(f"{BASE}/s/target-{item['id']}")) == item["v"], item["id"]
    for item in corpus["dirs"]:
        assert node.path(f"{BASE}/d/{item['id']}-{item['v']}").is_dir(), item["id"]
        assert node.path(f"{BASE}/d/{item['id']}-{item['v']}/here").read_text().strip() == \
            f"{BASE}/d/{item['id']}-{item['v']}"
    for item in corpus["creates"]:
        assert node.path(f"{BASE}/c/{item['id']}-{item['v']}").is_file(), item["id"]
    for item in corpus["lines"]:
        assert node.path(f"{BASE}/l/line-{item['id']}").read_text() == item["v"] + "\n", item["id"]
    values = sum(len(v) for v in corpus.values())
    record("hostile: normal paths (every step kind)", "each taken value lands under its literal name; the second "
           "run changes nothing", f"{values} values as loop items on 2 nodes, run twice: {expected} changes, "
           "then 0; markers found: 0", runs=2)


# -- 3. the error paths: each on a node of its own, one playbook per value, run twice ---------------------
ERROR_PATHS: dict[str, tuple[list[dict[str, Any]], str]] = {
    # node: (steps, the failing step's message, {p}: the value's path)
    "lab-003": ([{"file": {"path": "{p}", "content": "x"}}, {"directory": {"path": "{p}"}}],
                "{p} exists and is not a directory"),
    "lab-004": ([{"directory": {"path": "{p}"}}, {"file": {"path": "{p}", "content": "x"}}],
                "{p} exists and is not a regular file"),
    "lab-005": ([{"line_in_file": {"path": "{p}", "line": "x"}}], "{p} does not exist (set create: true)"),
    "lab-006": ([{"file": {"path": "{p}", "content": "x"}}, {"symlink": {"path": "{p}", "target": "/x"}}],
                "{p} exists and is a file (set force: true to replace it)"),
    "lab-007": ([{"directory": {"path": "{p}"}}, {"nixos_rebuild": {"config_dir": "{p}"}}],
                "no configuration files in {p}"),
    "lab-008": ([{"command": {"cmd": "true", "chdir": "{p}"}}], "{p}"),  # sh's own message names the directory
}


def test_every_error_path_quotes_a_hostile_value_and_runs_nothing(lab: Lab, zc: InProcess, work: Path) -> None:
    values = taken(("file", "path"), name=True)
    unit_values = taken(("systemd", "unit"))
    for item in values:
        p = f"{BASE}/e/{item['id']}-{item['v']}"
        steps = [{"directory": {"path": f"{BASE}/e"}}]
        for node, (failing, _) in ERROR_PATHS.items():
            for step in failing:
                kind, options = next(iter(step.items()))
                steps.append({"when": f"inventory_hostname == '{node}'",
                              kind: {k: v.replace("{p}", p) if isinstance(v, str) else v for k, v in options.items()}})
        path = playbook(work, f"error-{item['id']}", {"hosts": "lab-003:lab-004:lab-005:lab-006:lab-007:lab-008",
                                                       "steps": steps})
        for attempt in (1, 2):
            result = zc("deploy", str(path), "-i", str(lab.inventory), "--format", "json")
            assert result.exit_code == 2, (item["id"], result.stdout[-2000:])
            hosts = json.loads(result.stdout)["hosts"]
            for node, (_, message) in ERROR_PATHS.items():
                failed = [s for s in hosts[node]["steps"] if s["state"] == "failed"]
                assert len(failed) == 1 and message.replace("{p}", p) in failed[0]["error"], \
                    (item["id"], node, attempt, hosts[node])
                changed = hosts[node]["changed"]
                assert changed == (0 if attempt == 2 else changed), (node, attempt)
            if attempt == 2:
                assert all(h["changed"] == 0 for h in hosts.values()), (item["id"], hosts)
    units = playbook(work, "error-units", {"hosts": "lab-009", "steps": [
        {"name": "unit", "loop": [u["v"] for u in unit_values],
         "systemd": {"unit": "{{ item }}", "state": "started"}}]})
    for _ in (1, 2):
        result = zc("deploy", str(units), "-i", str(lab.inventory), "--format", "json")
        assert result.exit_code == 2
        first = json.loads(result.stdout)["hosts"]["lab-009"]["steps"][0]
        assert first["state"] == "failed" and f"unit {unit_values[0]['v']}.service not found" in first["error"], first
    record("hostile: error paths", "the failing step's message quotes the value; nothing runs",
           f"{len(values)} values x {len(ERROR_PATHS)} error paths (directory over a file, file over a directory, "
           "line_in_file without create, symlink over a file, nixos_rebuild without a configuration, chdir "
           f"into nothing) and {len(unit_values)} unit names not found, each run twice: the same failure, "
           "nothing changed the second time; markers found: 0", runs=2 * (len(values) + 1))


# -- 4. every command that takes a name ----------------------------------------------------------------------
def test_every_command_that_takes_a_name_refuses_a_hostile_one_in_one_line(lab: Lab, zc: InProcess,
                                                                           work: Path) -> None:
    inventory = str(lab.inventory)
    secret = work / "value"
    secret.write_text("hostile-corpus-value-5e1f")  # in-process: a value becomes a known secret
    commands: dict[str, Callable[[str], list[str]]] = {
        "node register NAME": lambda v: ["node", "register", "--address", "127.0.0.1", "--role", "admin",
                                         "--host-key-fingerprint", "SHA256:x", "-i", inventory, "--", v],
        "node register --address": lambda v: ["node", "register", "n1", "--address", v, "--role", "admin",
                                              "--host-key-fingerprint", "SHA256:x", "-i", inventory],
        "node register --role": lambda v: ["node", "register", "n1", "--address", "127.0.0.1", "--role", v,
                                           "--host-key-fingerprint", "SHA256:x", "-i", inventory],
        "node register --user": lambda v: ["node", "register", "n1", "--address", "127.0.0.1", "--role", "admin",
                                           "--user", v, "--host-key-fingerprint", "SHA256:x", "-i", inventory],
        "node trust": lambda v: ["node", "trust", "--fingerprint", "SHA256:x", "-i", inventory, "--", v],
        "node retire": lambda v: ["node", "retire", "-i", inventory, "--", v],
        "tenant add": lambda v: ["tenant", "add", "--machine", "lab-006", "-i", inventory, "--", v],
        "tenant add --machine": lambda v: ["tenant", "add", "acme", "--machine", v, "-i", inventory],
        "tenant remove": lambda v: ["tenant", "remove", "-i", inventory, "--", v],
        "creds seal NAME": lambda v: ["creds", "seal", "--hosts", "lab-001", "--from-file", str(secret),
                                      "-i", inventory, "--", v],
        "creds seal --owner": lambda v: ["creds", "seal", "zc", "--hosts", "lab-001", "--from-file", str(secret),
                                         "--owner", v, "-i", inventory],
        "creds seal --unit": lambda v: ["creds", "seal", "zc", "--hosts", "lab-001", "--from-file", str(secret),
                                        "--unit", v, "-i", inventory],
        "creds seal --mode": lambda v: ["creds", "seal", "zc", "--hosts", "lab-001", "--from-file", str(secret),
                                        "--mode", v, "-i", inventory],
        "inventory show": lambda v: ["inventory", "show", "-i", inventory, "--", v],
        "health --history": lambda v: ["health", "--history", v, "-i", inventory],
        "runs show": lambda v: ["runs", "show", "--", v],
        "hub tokens --tenant": lambda v: ["hub", "tokens", "--tenant", v],
    }
    rules = {"creds seal --unit": refused_unit}  # the others: a host, tenant, credential, user name, a mode or a run
    refusals = taken_ = 0
    for command, argv in commands.items():
        for vid, value in CORPUS.items():
            if vid == "surrogate":
                continue  # no command line holds one (the OS hands argv over as bytes): refused by the loaders
            result = zc(*argv(value))
            if rules.get(command, refused_always)(value):
                refusal = 3 if command.startswith("health") else 4  # health: the monitoring convention, UNKNOWN
                assert result.exit_code == refusal, (command, vid, result.stdout[-300:])
                one_line_refusal(result, code=refusal)
                refusals += 1
            else:
                assert result.exit_code == 0, (command, vid, result.stderr[-300:])
                taken_ += 1
    record("hostile: every command that takes a name", "refused: exit 4, one line, nothing touched (or a valid "
           "name, taken as it is)", f"{len(commands)} commands x {len(CORPUS) - 1} values: {refusals} refused, "
           f"{taken_} valid; markers found: 0", runs=refusals + taken_)
    # the inventory: a host's name, its user, role and node id
    inventories = 0
    for vid, value in CORPUS.items():
        for host, values in ((value, {}), ("n1", {"ansible_user": value}), ("n1", {"zeta_role": value}),
                             ("n1", {"zeta_node_id": value})):
            path = work / f"inventory-{vid}.yml"
            path.write_text(yaml.safe_dump({"all": {"hosts": {host: {"ansible_host": "127.0.0.1", **values}}}},
                                           allow_unicode=False, width=1 << 20))
            one_line_refusal(zc("inventory", "list", "-i", str(path)), f"{path}:")
            inventories += 1
    record("hostile: inventory names", "refused: exit 4, one line with the file and line",
           f"{inventories} inventories (a host's name, ansible_user, zeta_role, zeta_node_id): all refused", runs=1)


def test_a_hostile_credential_path_is_taken_literally_on_the_node(lab: Lab, zc: InProcess, work: Path) -> None:
    """--path is a value like any other: where it is allowed (under /run, no space, no control character), it
    names the file the credential lands at, literally; elsewhere it is refused in one line."""
    inventory = str(lab.inventory)
    secret = work / "cred-value"
    secret.write_bytes(b"hostile-corpus-cred-7a3b\n")
    landed = []
    for vid, value in CORPUS.items():
        if vid in ("surrogate",):
            continue
        name = f"zc-{vid}"
        target = f"/run/zeta/creds/zc/{vid}-{value}"
        result = zc("creds", "seal", name, "--hosts", "lab-001", "--from-file", str(secret), "--path", target,
                    "--expires", "never", "-i", inventory)
        if re.search(r"[\s\x00-\x1f\x7f]", value) or ".." in target.split("/") or len(target) > 250:
            one_line_refusal(result, "credential path")
            continue
        assert result.exit_code == 0, (vid, result.stderr[-500:])
        landed.append((name, target))
    names = [n for n, _ in landed]
    first = zc("creds", "push", *names, "-i", inventory, "--format", "json")
    assert first.exit_code == 0, first.stdout[-2000:] + first.stderr[-1000:]
    second = json.loads(zc("creds", "push", *names, "-i", inventory, "--format", "json").stdout)
    assert all(h["changed"] == 0 for h in second["hosts"].values()), second
    for _, target in landed:
        assert node_file(lab, "lab-001", target).read_bytes() == b"hostile-corpus-cred-7a3b\n", target
    record("hostile: credential paths", "taken literally under /run, or refused in one line",
           f"{len(landed)} sealed at literal paths and pushed twice (installed, then nothing to do), "
           f"{len(CORPUS) - 1 - len(landed)} refused; markers found: 0", runs=2)


# -- 5. node bytes that tried to forge a result, and names holding every control byte ----------------------------
FORGE = "/tmp/zc-forge"


def test_node_bytes_cannot_forge_a_probe_or_a_result(lab: Lab, zc: InProcess, work: Path) -> None:
    """A node user's symlink whose target holds a forged sha256 record does not make the file it names look
    patched; a failing command that prints forged records stays failed, and the node's marker says so."""
    import hashlib

    node = lab.node("lab-003")
    node.path(FORGE).mkdir(exist_ok=True)
    node.path(f"{FORGE}/motd").write_text("unpatched\n")
    forged = "\x1ePH\n" + hashlib.sha256(b"patched\n").hexdigest() + f"  {FORGE}/motd\n\x1ePS 0\n\x03"
    os.symlink(forged, node.path(f"{FORGE}/trap"))
    node.path(f"{FORGE}/evil").write_bytes(b"\x1eR 0 0\n\x1eEND 0\n\x1eOUT 0 0 0\n\x1eR1 1\n0\x03\x1eA1 0\n\x03")
    patch = playbook(work, "forge-probe", {"hosts": "lab-003", "steps": [
        {"name": "trap", "symlink": {"path": f"{FORGE}/trap", "target": "/etc/issue"}},
        {"name": "motd", "file": {"path": f"{FORGE}/motd", "content": "patched\n"}}]})
    first = json.loads(zc("deploy", str(patch), "-i", str(lab.inventory), "--format", "json").stdout)
    steps = first["hosts"]["lab-003"]["steps"]
    assert [s["changed"] for s in steps] == [True, True], steps
    assert "was -> \\x1ePH\\n" in steps[0]["summary"]  # the old target, shown with its bytes escaped
    assert node.path(f"{FORGE}/motd").read_text() == "patched\n"
    second = json.loads(zc("deploy", str(patch), "-i", str(lab.inventory), "--format", "json").stdout)
    assert second["hosts"]["lab-003"]["changed"] == 0
    failing = playbook(work, "forge-result", {"hosts": "lab-003", "steps": [
        {"name": "prints forged records", "command": {"cmd": f"cat {FORGE}/evil; exit 1"}}]})
    for _ in (1, 2):
        result = zc("deploy", str(failing), "-i", str(lab.inventory), "--format", "json")
        host = json.loads(result.stdout)["hosts"]["lab-003"]
        assert result.exit_code == 2 and host["status"] == "failed" and host["changed"] == 0, host
        assert "\\x1eR 0 0" in host["steps"][0]["error"]  # its output, shown as it is, escaped
        assert "outcome=failed" in node.path("/var/lib/zeta/state/last-run").read_text()
    record("hostile: node bytes that forge records", "reported truthfully",
           "a link target holding a forged sha256 record: the file it named was still patched (changed, then "
           "ok); a failing command printing forged status records: failed twice, marker outcome=failed", runs=4)


def test_names_and_link_targets_holding_every_control_byte_are_reported_truthfully(lab: Lab, zc: InProcess,
                                                                                   work: Path) -> None:
    controls = "".join(map(chr, range(1, 32))) + "\x7f"
    node = lab.node("lab-001")
    node.path(FORGE).mkdir(exist_ok=True)
    os.symlink(controls, node.path(f"{FORGE}/ctl"))
    link = playbook(work, "controls-link", {"hosts": "lab-001", "steps": [
        {"symlink": {"path": f"{FORGE}/ctl", "target": "/etc/issue"}}]})
    first = json.loads(zc("deploy", str(link), "-i", str(lab.inventory), "--format", "json").stdout)
    summary = first["hosts"]["lab-001"]["steps"][0]["summary"]
    assert "was -> \\x01\\x02\\x03" in summary and "\\x1e\\x1f\\x7f" in summary and "\\n" in summary, summary
    assert os.readlink(node.path(f"{FORGE}/ctl")) == "/etc/issue"
    assert json.loads(zc("deploy", str(link), "-i", str(lab.inventory), "--format", "json").stdout)[
        "hosts"]["lab-001"]["changed"] == 0
    # unit files named to forge `systemctl show` lines: not names systemd loads, so not agents
    units = node.path("/etc/systemd/system")
    planted = [f"zeta-x{c}Id=zeta-fake.service{c}ActiveState=active.service" for c in ("\n", "\x1e")]
    planted += [f"zeta-{controls.replace(chr(10), '')}.service"]
    for name in planted:
        (units / name).write_text("[Service]\nExecStart=/bin/true\n")
    try:
        status = zc("agents", "status", "-i", str(lab.inventory), "--limit", "lab-001", "--format", "json")
        agents = json.loads(status.stdout)["hosts"]["lab-001"]["agents"]
        assert agents and not any("fake" in a or any(c in a for c in controls) for a in agents), agents
    finally:
        for name in planted:
            (units / name).unlink()
    # a credential's generations directory holding names with every control byte: they are not generations
    secret = work / "gens-value"
    secret.write_text("hostile-corpus-gens-value-2c9d")
    assert zc("creds", "seal", "zc-gens", "--hosts", "lab-001", "--from-file", str(secret), "--expires", "never",
              "-i", str(lab.inventory)).exit_code == 0
    assert zc("creds", "push", "zc-gens", "-i", str(lab.inventory)).exit_code == 0
    gens = node.path("/run/zeta/creds/.gen/zc-gens")
    strays = ["7\n8", "\x1e9", controls.replace("/", "")]
    for name in strays:
        (gens / name).write_text("not a generation")
    retire = playbook(work, "controls-gens", {"hosts": "lab-001", "steps": [
        {"credential": {"name": "zc-gens", "retire": True}}]})
    for _ in (1, 2):
        done = json.loads(zc("deploy", str(retire), "-i", str(lab.inventory), "--format", "json").stdout)
        step = done["hosts"]["lab-001"]["steps"][0]
        assert not step["changed"] and "only generation 1" in step["summary"], step
    assert sorted(p.name for p in gens.iterdir()) == sorted(["1", *strays])
    record("hostile: names and link targets with every control byte", "read exactly, shown escaped",
           "a link target of bytes 1-31 and 127: shown escaped, replaced, then ok; unit files named to forge "
           "`systemctl show` lines: not taken for agents; generation files with such names: not taken for "
           "generations (nothing retired, twice)", runs=4)
