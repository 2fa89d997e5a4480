"""Edit an inventory file in place, keeping its comments, order and quoting (ruamel.yaml round trip).

Used by `node register` (add a host to its role's group) and `node retire` (remove it everywhere).
Written to a temp file and renamed: a crash never leaves half an inventory.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap

from zetactl.errors import BadInput
from zetactl.fileio import write_atomic


def _yaml() -> YAML:
    yaml = YAML()
    yaml.preserve_quotes = True
    yaml.indent(mapping=2, sequence=4, offset=2)
    yaml.width = 120
    return yaml


def _load(path: Path) -> Any:
    try:
        return _yaml().load(path.read_text())
    except OSError as exc:
        raise BadInput(f"{path}: {exc.strerror}") from None


def _save(path: Path, data: Any) -> None:
    buffer = io.StringIO()
    _yaml().dump(data, buffer)
    write_atomic(path, buffer.getvalue(), path.stat().st_mode & 0o777)  # keeps the file's mode


def _groups(node: Any) -> list[tuple[str, CommentedMap]]:
    """Every group mapping under `all` (depth first), with its name."""
    found: list[tuple[str, CommentedMap]] = []
    children: Any = node.get("children") if isinstance(node, Mapping) else None
    for name, child in list((children or {}).items()):
        if child is None:
            child = CommentedMap()
            children[name] = child
        found.append((name, child))
        found.extend(_groups(child))
    return found


def add_host(path: Path, group: str, name: str, values: Mapping[str, Any]) -> None:
    data = _load(path)
    top = data.get("all") if isinstance(data, Mapping) else None
    if top is None:
        raise BadInput(f"{path}: not an inventory with an 'all' group")
    groups = dict(_groups(top))
    target = groups.get(group)
    if target is None:
        children = top.setdefault("children", CommentedMap())
        target = children.setdefault(group, CommentedMap())
    hosts = target.get("hosts")
    if hosts is None:
        hosts = CommentedMap()
        target["hosts"] = hosts
    if name in hosts:
        raise BadInput(f"{path}: {name} is already in group {group}")
    hosts[name] = CommentedMap(values)
    _save(path, data)


def remove_host(path: Path, name: str) -> int:
    """Remove the host from every group; returns how many entries went."""
    data = _load(path)
    top = data.get("all") if isinstance(data, Mapping) else None
    removed = 0
    for _, group in [("all", top), *_groups(top)]:
        hosts: Any = group.get("hosts") if isinstance(group, Mapping) else None
        if isinstance(hosts, CommentedMap) and name in hosts:
            del hosts[name]
            removed += 1
    if removed:
        _save(path, data)
    return removed


def set_host_var(path: Path, name: str, key: str, value: Any) -> None:
    """Set a variable on the host's own entry (the one that carries its vars)."""
    data = _load(path)
    top = data.get("all")
    for _, group in [("all", top), *_groups(top)]:
        hosts = group.get("hosts") if isinstance(group, Mapping) else None
        if isinstance(hosts, Mapping) and name in hosts and isinstance(hosts[name], Mapping):
            hosts[name][key] = value
            _save(path, data)
            return
    raise BadInput(f"{path}: no entry with variables for {name}")
