"""The names that may enter zetactl, checked where they enter (CLI, inventory, playbook, an installer's answer).

Every name that later appears in a node's shell, a file on a node or a report is checked here once, with a
one-line refusal (BadInput: exit 4, nothing touched) that says what a valid one looks like. The quoting builder
(remote/shell.py) would carry any of them safely; these rules keep out what can only be a mistake or an attack
(a newline in a unit name, `$(...)` in a host name, a path that is not absolute).
"""

from __future__ import annotations

import re

from zetactl.errors import BadInput

HOST = re.compile(r"[A-Za-z0-9_:][A-Za-z0-9._:-]{0,252}")
ROLE = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,62}")
NODE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")
# systemd.unit(5): ASCII letters, digits, ":", "-", "_", ".", "\" (escapes), "@" (instances); a known type suffix
UNIT = re.compile(r"[A-Za-z0-9:_\\][A-Za-z0-9:_.\\@-]{0,249}")
UNIT_TYPES = ("service", "socket", "device", "mount", "automount", "swap", "target", "path", "timer", "slice",
              "scope")
ACCOUNT = re.compile(r"[A-Za-z_][A-Za-z0-9._-]{0,31}\$?|[0-9]{1,10}")
CONTROL = re.compile(r"[\x00-\x1f\x7f]")
PATH_MAX = 4096


def show(value: object) -> str:
    """A value in a one-line message: repr (control characters escaped), at most 60 characters."""
    text = repr(value)
    return text if len(text) <= 60 else text[:56] + "...'"


def unicode(value: str, what: str) -> str:
    """Any text that is valid Unicode (file content: any byte, NUL included, but no lone surrogate)."""
    _valid_unicode(value, what)
    return value


def _valid_unicode(value: str, what: str) -> None:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise BadInput(f"{what} {show(value)} is not valid Unicode (a lone surrogate such as \\ud800)") from None


def _check(value: object, pattern: re.Pattern[str], what: str, rule: str) -> str:
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise BadInput(f"{what} {show(value)}: {rule}")
    return value


def host_name(value: object, what: str = "host name") -> str:
    return _check(value, HOST, what, "letters, digits, '.', '_', ':' and '-' (at most 253), not starting with "
                  "'-' or '.'")


def role(value: object, what: str = "role") -> str:
    return _check(value, ROLE, what, "a letter, then letters, digits, '_' and '-' (at most 63)")


def node_id(value: object, what: str = "node id") -> str:
    return _check(value, NODE_ID, what, "letters, digits, '.', '_', ':' and '-' (at most 128), starting with a "
                  "letter or digit")


def unit(value: object, what: str = "unit") -> str:
    """A systemd unit name; '.service' is added when it has no type suffix."""
    if not isinstance(value, str) or not UNIT.fullmatch(value):
        raise BadInput(f"{what}: invalid unit name {show(value)} (a systemd unit name is letters, digits, ':', '_', "
                       "'.', '\\', '@' and '-', not starting with '-' or '.')")
    name = value
    if name.rpartition(".")[2] not in UNIT_TYPES:
        name += ".service"
    return name


def account(value: object, what: str = "owner") -> str:
    """A user or group name (or a numeric id), as useradd accepts one."""
    return _check(value, ACCOUNT, what, "a user or group name: a letter or '_', then letters, digits, '.', '_' "
                  "and '-' (at most 32), or a number")


def path(value: object, what: str = "path") -> str:
    """An absolute path on a node: no control characters, valid Unicode, at most 4096 bytes."""
    if not isinstance(value, str):
        raise BadInput(f"{what} must be a string, not {type(value).__name__}")
    _valid_unicode(value, what)
    if not value.startswith("/"):
        raise BadInput(f"{what} must be absolute (start with /), not {show(value)}")
    if CONTROL.search(value):
        raise BadInput(f"{what} {show(value)} holds a control character (a newline, a tab, ...): not a path "
                       "zetactl manages")
    if len(value.encode()) > PATH_MAX or any(len(part.encode()) > 255 for part in value.split("/")):
        raise BadInput(f"{what} {show(value)} is longer than a path can be (4096 bytes, 255 per name)")
    return value


def link_target(value: object, what: str = "target") -> str:
    """A symlink's target (absolute or relative): no control characters, valid Unicode, at most 4095 bytes."""
    if not isinstance(value, str):
        raise BadInput(f"{what} must be a string, not {type(value).__name__}")
    _valid_unicode(value, what)
    if not value or CONTROL.search(value) or len(value.encode()) >= PATH_MAX:
        raise BadInput(f"{what} {show(value)}: a link target is 1 to 4095 bytes without control characters")
    return value


def text(value: object, what: str) -> str:
    """Free text that ends up in a file or a message on a node (a symlink target, a line): valid Unicode, no NUL."""
    if not isinstance(value, str):
        raise BadInput(f"{what} must be a string, not {type(value).__name__}")
    _valid_unicode(value, what)
    if "\0" in value:
        raise BadInput(f"{what} {show(value)} holds a NUL byte")
    return value
