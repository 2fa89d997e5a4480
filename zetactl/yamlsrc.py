"""YAML loading that remembers where each value came from, so errors can name file and line.

Mappings load as `Located` dicts: `.line` is the mapping's own line and `.line_of(key)` the line of
one key. Duplicate keys are an error (PyYAML would silently keep the last one).

Bad input is bounded before anything else reads it (`LIMITS`): a file larger than 16 MiB, nesting deeper than
64, a number beyond 64 bits, text that is not valid Unicode (a `"\ud800"` escape) and aliases that expand to
more than a million values (an alias bomb) are each refused in one line with the file and line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from zetactl.errors import BadInput


class Located(dict[str, Any]):
    """A mapping from a YAML file that knows the file and the line of itself and of each key."""

    file: str = ""
    line: int = 0
    key_lines: dict[str, int]

    @classmethod
    def empty_at(cls, file: str, line: int) -> Located:
        """An empty mapping standing where YAML had nothing (`key:` with no value)."""
        empty = cls()
        empty.file, empty.line, empty.key_lines = file, line, {}
        return empty

    def line_of(self, key: str) -> int:
        return self.key_lines.get(key, self.line)

    def error(self, message: str, key: str | None = None) -> BadInput:
        return BadInput(message, file=self.file, line=self.line_of(key) if key else self.line)


class _Loader(yaml.SafeLoader):
    pass


class _FastLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """libyaml's parser (PyYAML's C extension) where it is installed: the same values and marks, several
    times faster on a fleet-sized inventory. A file it refuses is parsed again by `_Loader`, whose
    messages are the ones documented and tested."""


def _construct_mapping(loader: _Loader, node: yaml.MappingNode) -> Located:
    loader.flatten_mapping(node)
    result = Located()
    result.file = loader.name
    result.line = node.start_mark.line + 1
    result.key_lines = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if not isinstance(key, str | int | float | bool) or key is None:
            raise BadInput("mapping keys must be plain scalars", file=loader.name, line=key_node.start_mark.line + 1)
        key = str(key)
        if key in result:
            raise BadInput(f"duplicate key {key!r}", file=loader.name, line=key_node.start_mark.line + 1)
        result[key] = loader.construct_object(value_node, deep=True)
        result.key_lines[key] = key_node.start_mark.line + 1
    return result


for _kind in (_Loader, _FastLoader):
    _kind.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


MAX_BYTES = 16 * 1024 * 1024  # a playbook or an inventory
MAX_DEPTH = 64  # mappings and lists inside one another
MAX_VALUES = 1_000_000  # values once every alias is expanded
MAX_INT = 2**63


def load_yaml(path: Path) -> Any:
    """Parse one YAML file; a syntax error becomes BadInput with the file and line."""
    try:
        size = path.stat().st_size
        if size > MAX_BYTES:
            raise BadInput(f"the file is {size / 2**20:.0f} MiB; a playbook or an inventory is at most "
                           f"{MAX_BYTES // 2**20} MiB (put large content in a file next to it: source:)",
                           file=str(path))
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise BadInput("file not found", file=str(path)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInput(f"cannot read: {exc}", file=str(path)) from None
    return load_yaml_text(text, str(path))


def load_yaml_text(text: str, name: str) -> Any:
    if len(text) > MAX_BYTES:
        raise BadInput(f"more than {MAX_BYTES // 2**20} MiB of YAML", file=name)
    try:
        return check_bounds(_parse(_FastLoader, text, name), name)
    except (yaml.YAMLError, RecursionError, ValueError, OverflowError):
        pass  # refused: the pure-Python parser names the problem (and raises BadInput below)
    try:
        return check_bounds(_parse(_Loader, text, name), name)
    except RecursionError:
        raise BadInput(f"nested deeper than {MAX_DEPTH} levels", file=name) from None
    except (ValueError, OverflowError) as exc:  # a number Python will not read (4300 digits and more)
        raise BadInput(f"a value cannot be read: {str(exc)[:80]}", file=name) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        problem = exc.problem or "invalid YAML"
        if exc.context and exc.context_mark and exc.context_mark.line + 1 != line:
            problem += f" ({exc.context} started at line {exc.context_mark.line + 1})"
        raise BadInput(f"invalid YAML: {problem}", file=name, line=line) from None
    except yaml.YAMLError as exc:
        raise BadInput(f"invalid YAML: {exc}", file=name) from None


def _parse(kind: type[yaml.SafeLoader], text: str, name: str) -> Any:
    loader = kind(text)
    loader.name = name
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


def check_bounds(data: Any, name: str) -> Any:
    """Refuse what no playbook or inventory needs and what would cost the controller unbounded time or memory:
    nesting deeper than MAX_DEPTH, numbers beyond 64 bits, text that is not valid Unicode, more than MAX_VALUES
    values once aliases are expanded. Shared (aliased) values are visited once."""
    sizes: dict[int, int] = {}  # id -> values beneath, aliases expanded

    def line_of(parent: Any, key: Any) -> int | None:
        if isinstance(parent, Located):
            return parent.line_of(str(key)) if key is not None else parent.line
        return None

    stack: list[tuple[Any, int, Any, Any, bool]] = [(data, 1, None, None, False)]
    while stack:
        value, depth, parent, key, done = stack.pop()
        if isinstance(value, dict | list):
            if done:
                children = value.values() if isinstance(value, dict) else value
                sizes[id(value)] = 1 + sum(sizes.get(id(c), 1) for c in children)
                if sizes[id(value)] > MAX_VALUES:
                    raise BadInput(f"expands to more than {MAX_VALUES:,} values (an alias used inside itself "
                                   "again and again?)", file=name, line=line_of(parent, key))
                continue
            if id(value) in sizes:
                continue  # an alias of a value already checked
            if depth > MAX_DEPTH:
                raise BadInput(f"nested deeper than {MAX_DEPTH} levels", file=name, line=line_of(parent, key))
            sizes[id(value)] = 1  # seen (its size is set once its children are)
            stack.append((value, depth, parent, key, True))
            items = value.items() if isinstance(value, dict) else enumerate(value)
            holder = value if isinstance(value, Located) else parent
            for child_key, child in items:
                stack.append((child, depth + 1, holder, child_key if isinstance(value, Located) else key, False))
        elif isinstance(value, str):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                raise BadInput("text that is not valid Unicode (a lone surrogate such as \\ud800)", file=name,
                               line=line_of(parent, key)) from None
        elif isinstance(value, int) and not isinstance(value, bool) and abs(value) >= MAX_INT:
            raise BadInput("a number beyond 64 bits", file=name, line=line_of(parent, key))
    return data
