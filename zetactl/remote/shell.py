"""Shell text as a type: values are quoted by construction (in the spirit of pyinfra's StringCommand/QuoteString).

`Sh` is text a node's `sh` will run. There are only three ways to make one:

    Sh("literal text")        text written in zetactl's own source, as a string literal (tests/test_shell_discipline.py
                              checks every call site: an f-string, `format`, `%`, `replace` or `+` there fails it)
    sh(...), cat(...)         join parts: an `Sh` part is shell text as it is, every other part (str, int) is a
                              value and is quoted; `lines(...)` joins shell texts one per line
    script("name.sh", K=v)    a script shipped as package data (zetactl/remote/scripts/), its values given as quoted
                              assignments at its top; `shellcheck` checks every one in the tests
    operator_shell(text)      shell the operator wrote on purpose: a playbook's `command`, a gate's or a health
                              check's `command`, `zetactl run CMD`

Everything that runs on a node takes an `Sh`, never a `str` (mypy checks it), so a value cannot reach a shell
without passing `quote`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import cache
from importlib import resources
from typing import Final

from zetactl.errors import BadInput


class Sh:
    """Shell text (see the module docstring for how one is made). `+` joins two without a space."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text: Final[str] = text

    def __add__(self, other: Sh) -> Sh:
        if not isinstance(other, Sh):
            return NotImplemented
        return Sh(self.text + other.text)

    def __bool__(self) -> bool:
        return bool(self.text.strip())

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Sh) and other.text == self.text

    def __hash__(self) -> int:
        return hash(self.text)

    def __repr__(self) -> str:
        return f"Sh({self.text[:80]!r}{'...' if len(self.text) > 80 else ''})"

    def __str__(self) -> str:  # never to be formatted into more shell: join with sh()/cat() instead
        return self.text


EMPTY = Sh("")
Part = Sh | str | int

_SAFE = re.compile(r"[A-Za-z0-9_@%+=:,./-]+")


class UnsafeValue(BadInput):
    """A value no shell can carry as it is (a NUL byte, text that is not valid Unicode)."""


def check_value(value: str, what: str = "value") -> str:
    """The value, if a shell can carry it: no NUL, valid Unicode (no lone surrogates). Else UnsafeValue."""
    if "\0" in value:
        raise UnsafeValue(f"{what} holds a NUL byte, which no file name or shell word can")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise UnsafeValue(f"{what} is not valid Unicode (it holds a lone surrogate such as \\ud800)") from None
    return value


def quote(value: str | int) -> Sh:
    """One shell word that stands for exactly `value` (single quotes; `'` as '"'"')."""
    if isinstance(value, bool):
        raise TypeError("a bool is not a shell value: say what it means (a word, a number)")
    if isinstance(value, int):
        return Sh(str(value))
    check_value(value)
    if value and _SAFE.fullmatch(value):
        return Sh(value)
    return Sh("'" + value.replace("'", "'\"'\"'") + "'")


def _part(part: Part) -> Sh:
    return part if isinstance(part, Sh) else quote(part)


def sh(*parts: Part) -> Sh:
    """Parts joined by spaces: `Sh` as it is, any other value quoted. sh(Sh("rm -f --"), path)."""
    return Sh(" ".join(_part(p).text for p in parts))


def cat(*parts: Part) -> Sh:
    """Parts joined with nothing between them: cat(Sh("zt="), path, Sh(".tmp.$$"))."""
    return Sh("".join(_part(p).text for p in parts))


def lines(*parts: Sh | Iterable[Sh]) -> Sh:
    """Shell texts one per line (empty ones left out)."""
    flat: list[Sh] = []
    for part in parts:
        flat.extend([part] if isinstance(part, Sh) else part)
    return Sh("\n".join(p.text for p in flat if p.text))


def operator_shell(text: str) -> Sh:
    """Shell written by the operator on purpose (a playbook's `command`, a gate's or a health check's `command`,
    `zetactl run CMD`): it runs as written; zetactl puts no value of its own into it."""
    return Sh(check_value(text, "a command"))


def fail(message: str, code: int = 1) -> Sh:
    """sh that prints `message` on stderr and exits `code`: the error path of a step (the message is a value)."""
    return sh(Sh("printf '%s\\n'"), message, Sh(">&2; exit"), int(code))


# -- scripts shipped as package data ---------------------------------------------------------------------------

_VALUES = re.compile(r"^# values:(?P<names>( [A-Z][A-Z0-9_]*)*)$", re.M)


@cache
def _source(package: str, name: str) -> tuple[str, tuple[str, ...]]:
    text = resources.files(package).joinpath(name).read_text()
    match = _VALUES.search(text)
    declared = tuple(match["names"].split()) if match else ()
    return text, declared


def script(name: str, *, package: str = "zetactl.remote.scripts", **values: Part) -> Sh:
    """The shipped script `name`, its values (exactly those its `# values:` line declares) as quoted assignments at
    its top. A value that is `Sh` is passed as text (quoted too): a script a script writes to a file."""
    text, declared = _source(package, name)
    if set(values) != set(declared):
        missing, extra = sorted(set(declared) - set(values)), sorted(set(values) - set(declared))
        raise TypeError(f"{name}: values {declared}: missing {missing}, unexpected {extra}")
    assignments = [f"{key}={quote(value.text if isinstance(value, Sh) else value).text}" for key, value in
                   ((k, values[k]) for k in declared)]
    return Sh("\n".join([*assignments, text]))


def source(name: str, *, package: str = "zetactl.remote.scripts") -> Sh:
    """A shipped fragment that takes no values (functions, a read-only probe)."""
    text, declared = _source(package, name)
    if declared:
        raise TypeError(f"{name} takes values {declared}: use script()")
    return Sh(text)
