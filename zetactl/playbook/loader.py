"""Load a playbook file: structure, step kinds, options and handler names, with file:line errors."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

from zetactl.errors import BadInput
from zetactl.gate import parse_check
from zetactl.playbook.model import Playbook, StepDecl
from zetactl.steps import ALIASES, KINDS, Where
from zetactl.yamlsrc import Located, load_yaml

PLAY_KEYS = {"name", "hosts", "vars", "steps", "handlers", "serial", "max_fail", "gate"}
STEP_KEYS = {"name", "when", "tags", "notify", "loop"}
HINTS = {"tasks": "steps", "vars_files": "vars", "become": None, "gather_facts": None}


def load_playbook(path: Path) -> Playbook:
    data = load_yaml(path)
    file = str(path)
    if isinstance(data, list):
        raise BadInput("a zetactl playbook is one mapping (name, hosts, vars, steps, handlers), "
                       "not a list of plays", file=file, line=1)
    if not isinstance(data, Located):
        raise BadInput("a playbook is a mapping with 'hosts' and 'steps'", file=file, line=1)
    for key in data:
        if key not in PLAY_KEYS:
            hint = HINTS.get(key)
            extra = f" (did you mean {hint!r}?)" if hint else ""
            raise data.error(f"unknown playbook key {key!r}{extra}; known: {', '.join(sorted(PLAY_KEYS))}", key)
    hosts = data.get("hosts", "all")
    if not isinstance(hosts, str) or not hosts.strip():
        raise data.error("'hosts' must be a host pattern string", "hosts")
    play_vars = data.get("vars") or {}
    if not isinstance(play_vars, dict):
        raise data.error("'vars' must be a mapping", "vars")
    for var in play_vars:
        if not str(var).isidentifier():
            raise data.error(f"variable name {var!r} is not a valid identifier", "vars")
    steps = _steps(data, "steps", handler=False)
    handlers = _steps(data, "handlers", handler=True)
    names = [h.name for h in handlers]
    for handler in handlers:
        if names.count(handler.name) > 1:
            raise handler.where.error(f"two handlers are named {handler.name!r}")
    for step in (*steps, *handlers):
        for target in step.notify:
            if target not in names:
                raise step.at("notify").error(f"notify: no handler named {target!r}"
                                       + (f" (handlers: {', '.join(names)})" if names else ""))
    if not steps:
        raise data.error("the playbook has no steps", "steps" if "steps" in data else None)
    return Playbook(
        path=path, name=str(data.get("name") or path.stem), hosts=hosts.strip(), vars=dict(play_vars),
        steps=tuple(steps), handlers=tuple(handlers), digest=_digest(path, (*steps, *handlers)),
        serial=_serial(data), max_fail=_amount(data, "max_fail"), gate=_gate(data),
    )


def _amount(data: Located, key: str) -> str | None:
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | str) or not re.fullmatch(r"\d+%?", str(value).strip()):
        raise data.error(f"'{key}' must be a count or a percentage like '10%', not {value!r}", key)
    return str(value).strip()


def _serial(data: Located) -> tuple[str, ...]:
    value = data.get("serial")
    if value is None:
        return ()
    items = value if isinstance(value, list) else [value]
    if not items:
        raise data.error("'serial' must not be empty", "serial")
    result = []
    for item in items:
        if isinstance(item, bool) or not isinstance(item, int | str) or not re.fullmatch(r"0*[1-9]\d*%?", str(item)):
            raise data.error(f"'serial' takes counts and percentages like [1, '10%', '50%'], not {item!r}", "serial")
        result.append(str(item))
    return tuple(result)


def _gate(data: Located) -> tuple[tuple[Any, Where], ...]:
    raw = data.get("gate")
    if raw is None:
        return ()
    if not isinstance(raw, list) or not raw:
        raise data.error("'gate' must be a list of checks (unit, command, http)", "gate")
    checks = []
    for entry in raw:
        where = Where(data.file, entry.line if isinstance(entry, Located) else data.line_of("gate"))
        parse_check(entry, where)  # shape errors now, with the line; values are rendered per host
        checks.append((dict(entry) if isinstance(entry, dict) else entry, where))
    return tuple(checks)


def _steps(data: Located, key: str, *, handler: bool) -> list[StepDecl]:
    raw = data.get(key)
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise data.error(f"'{key}' must be a list of steps", key)
    result = []
    for index, item in enumerate(raw):
        if not isinstance(item, Located):
            raise data.error(f"{key}[{index}] must be a mapping with one step kind", key)
        result.append(_step(item, index, handler))
    return result


def _step(item: Located, index: int, handler: bool) -> StepDecl:
    where = Where(item.file, item.line)
    kinds = [k for k in item if k not in STEP_KEYS]
    if not kinds:
        raise where.error(f"step has no kind (one of: {', '.join(sorted(KINDS))})")
    if len(kinds) > 1:
        unknown = [k for k in kinds if ALIASES.get(k, k) not in KINDS]
        if unknown:
            raise item.error(f"unknown step key {unknown[0]!r}; kinds: {', '.join(sorted(KINDS))}; "
                             f"other keys: {', '.join(sorted(STEP_KEYS))}", unknown[0])
        raise where.error(f"a step has exactly one kind, this one has {', '.join(kinds)}")
    kind_key = kinds[0]
    kind = ALIASES.get(kind_key, kind_key)
    if kind not in KINDS:
        raise item.error(f"unknown step kind {kind_key!r} (known: {', '.join(sorted(KINDS))})", kind_key)
    args: Any = item[kind_key]
    if kind == "command" and isinstance(args, str):
        args = {"cmd": args}
    if not isinstance(args, dict):
        raise item.error(f"{kind}: options must be a mapping", kind_key)
    where = Where(item.file, item.line_of(kind_key))
    options = KINDS[kind].options
    for option in args:
        if option not in options:
            raise where.error(f"{kind}: unknown option {option!r} (known: {', '.join(sorted(options))})")
    target = args.get("path") or args.get("dest") or args.get("unit") or args.get("cmd") or ""
    name = item.get("name") or f"{kind} {target}".strip()
    if handler and not item.get("name"):
        raise item.error("a handler needs a name (steps notify it by name)")
    when = item.get("when")
    if isinstance(when, bool):
        when = "true" if when else "false"
    if when is not None and not isinstance(when, str):
        raise item.error("'when' must be an expression string", "when")
    loop = item.get("loop")
    if loop is not None and not isinstance(loop, list | str):
        raise item.error("'loop' must be a list or an expression giving a list", "loop")
    if loop is not None and handler:
        raise item.error("a handler cannot loop", "loop")
    return StepDecl(
        index=index, name=str(name), kind=kind, args=args, where=where, when=when,
        tags=_str_list(item, "tags"), notify=_str_list(item, "notify"), handler=handler, loop=loop,
        key_lines=dict(item.key_lines),
    )


def _str_list(item: Located, key: str) -> tuple[str, ...]:
    value = item.get(key)
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise item.error(f"'{key}' must be a string or a list of strings", key)


def _digest(path: Path, decls: tuple[StepDecl, ...]) -> str:
    digest = hashlib.sha256(path.read_bytes())
    for decl in decls:
        option = KINDS[decl.kind].payload_option
        ref = decl.args.get(option) if option else None
        if isinstance(ref, str) and "{" not in ref:
            source = path.parent / ref
            if source.is_file():
                digest.update(source.read_bytes())
    return digest.hexdigest()
