"""YAML loading that remembers where each value came from, so errors can name file and line.

Mappings load as `Located` dicts: `.line` is the mapping's own line and `.line_of(key)` the line of
one key. Duplicate keys are an error (PyYAML would silently keep the last one).
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


def load_yaml(path: Path) -> Any:
    """Parse one YAML file; a syntax error becomes BadInput with the file and line."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise BadInput("file not found", file=str(path)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInput(f"cannot read: {exc}", file=str(path)) from None
    return load_yaml_text(text, str(path))


def load_yaml_text(text: str, name: str) -> Any:
    try:
        return _parse(_FastLoader, text, name)
    except yaml.YAMLError:
        pass  # refused: the pure-Python parser names the problem (and raises BadInput below)
    try:
        return _parse(_Loader, text, name)
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
