"""Shell text is built in one place, quoted by construction: an AST scan of every module keeps it that way.

Outside zetactl/remote/ (the builder, the answer format and the runner):
  - `Sh(...)` takes one string literal (never an f-string, `format`, `%`, `replace`, `+` or a name);
  - no f-string, `format`, `%` or `replace` builds text that reads like shell;
  - no module imports shlex (quoting lives in remote/shell.py);
  - only the modules that run an operator's own command call `operator_shell`;
  - nothing runs a command on a connection but the runner (`conn.run`, `create_process`).
A test must be able to fail: each rule is also run on a snippet that breaks it.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "zetactl"
BUILDER = PACKAGE / "remote"
# shell syntax and the commands zetactl's scripts use: text holding one of these is shell text
SHELL = re.compile(r"\$\(|\$\{|\$[A-Za-z_?]|2>/dev/null|>&2|; then\b|; do\b|&& |\|\| |<<|\bprintf '|\bmkdir -p\b"
                   r"|\brm -r?f\b|\bmv -[fT]|\bchmod [0-7-]|\bchown |\bln -s|\bsha256sum\b|\bflock\b|\bzf |\bzv "
                   r"|\bsystemctl (show|is-active|start|stop|enable|disable)\b|\bset -e\b|\bexit [0-9$]")
# who may run an operator's own shell: a playbook's command (and its `unless`), a gate, `zetactl run`
OPERATOR_SHELL = {"zetactl/steps/command.py", "zetactl/engine/gate.py", "zetactl/cli/deploy.py"}
RUNNER = {"zetactl/remote/runner.py"}


def _text_of(node: ast.AST) -> str:
    """The literal text a string expression holds (f-string parts included)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(_text_of(v) for v in node.values)
    return ""


def violations(source: str, name: str) -> list[str]:
    tree = ast.parse(source)
    found: list[str] = []
    in_builder = name.startswith("zetactl/remote/")

    def at(node: ast.AST, rule: str) -> None:
        found.append(f"{name}:{getattr(node, 'lineno', 0)}: {rule}")

    for node in ast.walk(tree):
        if isinstance(node, ast.Import | ast.ImportFrom):
            modules = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            if "shlex" in modules and not in_builder:
                at(node, "imports shlex: quote with zetactl.remote (sh, cat, quote)")
        if not isinstance(node, ast.Call):
            if isinstance(node, ast.JoinedStr) and not in_builder and SHELL.search(_text_of(node)):
                at(node, f"an f-string builds shell text: {_text_of(node)[:50]!r}")
            if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mod) and not in_builder \
                    and SHELL.search(_text_of(node.left)):
                at(node, "`%` builds shell text")
            continue
        func = node.func
        called = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
        literal = len(node.args) == 1 and not node.keywords and isinstance(node.args[0], ast.Constant) \
            and isinstance(node.args[0].value, str)
        if called == "Sh" and not in_builder and not literal:
            at(node, "Sh() takes one string literal: values go through sh(), cat() or script()")
        if called in ("format", "replace") and isinstance(func, ast.Attribute) and not in_builder \
                and SHELL.search(_text_of(func.value)):
            at(node, f"str.{called} builds shell text")
        if called == "operator_shell" and name not in OPERATOR_SHELL and not in_builder:
            at(node, "operator_shell outside the modules that run an operator's own command")
        if called in ("run", "create_process") and isinstance(func, ast.Attribute) and name not in RUNNER \
                and isinstance(func.value, ast.Name) and func.value.id in ("conn", "connection", "fresh"):
            at(node, f"{func.value.id}.{called}: every script goes through zetactl.remote.runner")
    return found


def test_no_module_builds_shell_text_but_the_builder() -> None:
    found: list[str] = []
    for path in sorted(PACKAGE.rglob("*.py")):
        name = str(path.relative_to(ROOT))
        if "/lab/bin/" in name:
            continue  # the lab's stand-ins for NixOS commands run on the node: they build no shell
        found += violations(path.read_text(), name)
    assert not found, "\n".join(found)


@pytest.mark.parametrize(("snippet", "rule"), [
    ('from zetactl.remote import Sh\nSh(f"rm -rf {path}")', "one string literal"),
    ('from zetactl.remote import Sh\nSh("rm -rf " + path)', "one string literal"),
    ('from zetactl.remote import Sh\nSh(text)', "one string literal"),
    ('script = f"mkdir -p {d}"', "f-string"),
    ('script = "cat {f} 2>/dev/null".format(f=f)', "str.format"),
    ('script = "N=@N@; echo $N".replace("@N@", n)', "str.replace"),
    ('script = "rm -f %s" % path', "`%`"),
    ("import shlex", "shlex"),
    ("from zetactl.remote import operator_shell\noperator_shell(x)", "operator_shell"),
    ('await conn.run("sh", input=script)', "conn.run"),
])
def test_each_rule_catches_what_it_forbids(snippet: str, rule: str) -> None:
    found = violations(snippet, "zetactl/somewhere.py")
    assert any(rule in f for f in found), found


def test_messages_that_name_commands_are_not_shell() -> None:
    """What the rules leave alone: a message naming a command, a path, a literal Sh, the builder itself."""
    ok = ('msg = f"run zetactl creds push {name}"\nSh("zf keys none")\nwhere = f"/run/zeta/creds/{n}"\n'
          'note = f"journalctl -u {unit}"')
    assert violations(ok, "zetactl/somewhere.py") == []
    assert violations('x = f"a=$(b) {c}"', "zetactl/remote/shell.py") == []
