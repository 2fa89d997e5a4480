"""The plan: for each selected host, its rendered steps and handlers, and the waves to run in.

Built entirely on the controller with no connection, so `zetactl plan` and every bad-input check
happen before any host is touched.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from zetactl.errors import BadInput
from zetactl.facts import NeedsFacts
from zetactl.gate import GateCheck, parse_check
from zetactl.inventory import Host, Inventory, load_inventory, select_hosts
from zetactl.playbook import Playbook, StepDecl, load_playbook
from zetactl.playbook.render import Renderer
from zetactl.steps import Step, Where


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
    step: Step | None  # None when skipped, or deferred until the host's facts are known
    skip_reason: str | None = None
    # Set when rendering reads `facts`: called with the host's facts, gives the rendered step.
    resolve: Callable[[Mapping[str, Any]], PlannedStep] | None = field(default=None, repr=False, compare=False)

    @property
    def name(self) -> str:
        return self.decl.name


@dataclass(frozen=True)
class HostPlan:
    host: Host
    steps: tuple[PlannedStep, ...]
    handlers: tuple[PlannedStep, ...]
    gate: tuple[GateCheck, ...] = ()


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
                      for planned in _plan_steps(renderer, decl, context, host, selection))
        handlers = tuple(_plan_step(renderer, decl, context, host, Selection()) for decl in playbook.handlers)
        gate = tuple(_gate_check(renderer, raw, where, context, host.name) for raw, where in playbook.gate)
        plans.append(HostPlan(host, steps, handlers, gate))
    validate_steps([(p.host.name, s.step) for p in plans for s in (*p.steps, *p.handlers) if s.step is not None])
    return Plan(playbook, inventory, selection, tuple(plans))


def _gate_check(renderer: Renderer, raw: Any, where: Where, context: Mapping[str, Any], host: str) -> GateCheck:
    try:
        return parse_check(renderer.render_value(raw, context, where, host), where, rendered=True)
    except NeedsFacts:
        raise where.error("gate checks cannot use facts") from None


def validate_steps(steps: Sequence[tuple[str, Step]]) -> list[str]:
    """Kind-wide checks over every rendered step (e.g. nix syntax); raises BadInput; returns notes."""
    by_kind: dict[type[Step], list[tuple[str, Step]]] = {}
    for host, step in steps:
        by_kind.setdefault(type(step), []).append((host, step))
    notes = [kind.validate_all(items) for kind, items in by_kind.items()]
    return [note for note in notes if note]


MAX_LOOP = 10_000  # items of one step's loop


def _plan_steps(renderer: Renderer, decl: StepDecl, context: Mapping[str, Any], host: Host,
                selection: Selection) -> list[PlannedStep]:
    """One planned step, or one per item when the step has a `loop`."""
    if decl.loop is None:
        return [_plan_step(renderer, decl, context, host, selection)]
    try:
        items = renderer.render_value(decl.loop, context, decl.where, host.name)
    except NeedsFacts:
        raise decl.at("loop").error("loop cannot use facts (they are read when the host is reached); "
                                    "use `when` on the step instead") from None
    if not isinstance(items, list):
        raise decl.where.error(f"loop must give a list, not {type(items).__name__} (host {host.name})")
    if len(items) > MAX_LOOP:
        raise decl.at("loop").error(f"loop gives {len(items):,} items; a step loops at most {MAX_LOOP:,} times "
                                    f"(host {host.name})")
    planned = []
    for item in items:
        item_decl = replace(decl, name=f"{decl.name} ({item})")
        planned.append(_plan_step(renderer, item_decl, {**context, "item": item}, host, selection))
    return planned


def _plan_step(renderer: Renderer, decl: StepDecl, context: Mapping[str, Any], host: Host,
               selection: Selection) -> PlannedStep:
    reason = tag_skip_reason(decl, selection)
    if reason:
        return PlannedStep(decl, None, reason)
    try:
        if not renderer.when(decl, context, host.name):
            return PlannedStep(decl, None, f"when: {decl.when} is false")
        return PlannedStep(decl, renderer.build(decl, context, host.name))
    except NeedsFacts:
        extra = {"item": context["item"]} if "item" in context else {}

        def resolve(facts: Mapping[str, Any]) -> PlannedStep:
            return _plan_step(renderer, decl, {**renderer.variables(host, facts), **extra}, host, selection)

        return PlannedStep(decl, None, resolve=resolve)
