"""The plan: for each selected host, its rendered steps and handlers, and the waves to run in.

Built entirely on the controller with no connection, so `zetactl plan` and every bad-input check
happen before any host is touched.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from zetactl.errors import BadInput
from zetactl.inventory import Host, Inventory, load_inventory, select_hosts
from zetactl.playbook import Playbook, StepDecl, load_playbook
from zetactl.playbook.render import Renderer
from zetactl.steps import Step


@dataclass(frozen=True)
class Selection:
    """What the command line chose: which hosts, which steps, which variables."""

    limit: str | None = None
    tags: frozenset[str] = frozenset()
    skip_tags: frozenset[str] = frozenset()
    extra_vars: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class PlannedStep:
    decl: StepDecl
    step: Step | None  # None when skipped
    skip_reason: str | None = None

    @property
    def name(self) -> str:
        return self.decl.name


@dataclass(frozen=True)
class HostPlan:
    host: Host
    steps: tuple[PlannedStep, ...]
    handlers: tuple[PlannedStep, ...]


@dataclass(frozen=True)
class Plan:
    playbook: Playbook
    inventory: Inventory
    selection: Selection
    hosts: tuple[HostPlan, ...]


def tag_skip_reason(decl: StepDecl, selection: Selection) -> str | None:
    tags = set(decl.tags)
    if "never" in tags and not (tags & selection.tags):
        return "tagged never"
    if tags & selection.skip_tags:
        return f"tag skipped ({', '.join(sorted(tags & selection.skip_tags))})"
    if selection.tags and not (tags & selection.tags) and "always" not in tags:
        return "not in --tags"
    return None


def selected_hosts(playbook: Playbook, inventory: Inventory, limit: str | None) -> list[str]:
    names = select_hosts(inventory, playbook.hosts, origin=f"{playbook.path}: hosts")
    if limit:
        limited = set(select_hosts(inventory, limit, origin="--limit"))
        names = [n for n in names if n in limited]
    if not names:
        raise BadInput(f"no hosts selected (playbook hosts: {playbook.hosts!r}, --limit: {limit!r})")
    return names


def load_plan(playbook: Path, inventory: Path, selection: Selection, *, want_content: bool = False) -> Plan:
    """Load and render everything; raises BadInput (with file and line) before any host is touched."""
    return build_plan(load_playbook(playbook), load_inventory(inventory), selection, want_content=want_content)


def build_plan(playbook: Playbook, inventory: Inventory, selection: Selection, *, want_content: bool = False
               ) -> Plan:
    renderer = Renderer(playbook, inventory, selection.extra_vars, want_content=want_content)
    plans = []
    for name in selected_hosts(playbook, inventory, selection.limit):
        host = inventory.host(name)
        context = renderer.variables(host)
        steps = tuple(planned for decl in playbook.steps
                      for planned in _plan_steps(renderer, decl, context, host.name, selection))
        handlers = tuple(_plan_step(renderer, decl, context, host.name, Selection()) for decl in playbook.handlers)
        plans.append(HostPlan(host, steps, handlers))
    return Plan(playbook, inventory, selection, tuple(plans))


def _plan_steps(renderer: Renderer, decl: StepDecl, context: Mapping[str, Any], host: str,
                selection: Selection) -> list[PlannedStep]:
    """One planned step, or one per item when the step has a `loop`."""
    if decl.loop is None:
        return [_plan_step(renderer, decl, context, host, selection)]
    items = renderer.render_value(decl.loop, context, decl.where, host)
    if not isinstance(items, list):
        raise decl.where.error(f"loop must give a list, not {type(items).__name__} (host {host})")
    planned = []
    for item in items:
        item_decl = replace(decl, name=f"{decl.name} ({item})")
        planned.append(_plan_step(renderer, item_decl, {**context, "item": item}, host, selection))
    return planned


def _plan_step(renderer: Renderer, decl: StepDecl, context: Mapping[str, Any], host: str,
               selection: Selection) -> PlannedStep:
    reason = tag_skip_reason(decl, selection)
    if reason:
        return PlannedStep(decl, None, reason)
    if not renderer.when(decl, context, host):
        return PlannedStep(decl, None, f"when: {decl.when} is false")
    return PlannedStep(decl, renderer.build(decl, context, host))
