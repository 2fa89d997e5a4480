"""Playbook models: what the YAML declares, before rendering for any host."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zetactl.steps import Where


@dataclass(frozen=True)
class StepDecl:
    index: int
    name: str
    kind: str
    args: Mapping[str, Any] = field(repr=False)
    where: Where
    when: str | None = None
    tags: tuple[str, ...] = ()
    notify: tuple[str, ...] = ()
    handler: bool = False
    loop: Any = None  # a list, or an expression string rendered per host; each item runs as `item`
    key_lines: Mapping[str, int] = field(default_factory=dict, repr=False, compare=False)

    def at(self, key: str) -> Where:
        """Where one of the step's own keys (when, notify, loop) is, for errors about it."""
        return Where(self.where.file, self.key_lines.get(key, self.where.line))


@dataclass(frozen=True)
class Playbook:
    path: Path
    name: str
    hosts: str
    vars: Mapping[str, Any] = field(repr=False)
    steps: tuple[StepDecl, ...]
    handlers: tuple[StepDecl, ...]
    digest: str  # sha256 over the playbook and every file it reads: "same inputs" for --resume
    serial: tuple[str, ...] = ()  # wave sizes ("1", "10%", ...); --serial overrides
    max_fail: str | None = None  # failure budget; --max-fail overrides
    gate: tuple[tuple[Any, Where], ...] = ()  # health checks between waves, rendered per host
