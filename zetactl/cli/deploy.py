"""deploy, plan and run: the commands that act on hosts (or, for plan, pretend to)."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Annotated

import typer

from zetactl.cli.common import FormatOpt, InventoryOpt, LimitOpt, check_format, inventory_path, parse_extra_vars
from zetactl.errors import BadInput
from zetactl.inventory import load_inventory, select_hosts
from zetactl.plan import Selection, load_plan
from zetactl.report import exit_code, exit_code_for, json_document, print_json, print_recap
from zetactl.tables import tabulate
from zetactl.waves import make_waves

TagsOpt = Annotated[list[str] | None, typer.Option("--tags", "-t", help="Run only steps with these tags "
                                                   "(comma-separated or repeated); 'always' steps still run.")]
SkipTagsOpt = Annotated[list[str] | None, typer.Option("--skip-tags", help="Skip steps with these tags.")]
ExtraVarsOpt = Annotated[list[str] | None, typer.Option("--extra-vars", "-e", help="NAME=VALUE or @file.yml; "
                                                        "overrides every other variable.")]


def _tags(values: list[str] | None) -> frozenset[str]:
    return frozenset(t.strip() for v in values or [] for t in v.split(",") if t.strip())


def deploy(
    playbook: Annotated[Path, typer.Argument(help="Playbook file, e.g. playbooks/site.yml.")] = Path(""),
    inventory: InventoryOpt = None,  # type: ignore[assignment]
    limit: LimitOpt = None,
    tags: TagsOpt = None,
    skip_tags: SkipTagsOpt = None,
    extra_vars: ExtraVarsOpt = None,
    check: Annotated[bool, typer.Option("--check", help="Probe and decide only: report what would change, "
                                        "change nothing.")] = False,
    diff: Annotated[bool, typer.Option("--diff", help="Show the content changes (sensitive files masked).")] = False,
    forks: Annotated[int, typer.Option("--forks", "-f", min=1, help="Hosts worked on at once.")] = 100,
    serial: Annotated[list[str] | None, typer.Option("--serial", help="Wave sizes: N, P%, or a ramp "
                                                     "'1,10%,50%' (the last size repeats).")] = None,
    max_fail: Annotated[str | None, typer.Option("--max-fail", help="Failure budget (N hosts or P%): when "
                                                 "more hosts fail, no further wave starts.")] = None,
    timeout: Annotated[float, typer.Option("--timeout", help="Deadline per host, seconds.")] = 600.0,
    connect_timeout: Annotated[float, typer.Option("--connect-timeout", help="SSH connect+login deadline, "
                                                   "seconds.")] = 10.0,
    lock_timeout: Annotated[float, typer.Option("--lock-timeout", help="How long to wait for another "
                                                "controller's lock on a host, seconds.")] = 30.0,
    resume: Annotated[str | None, typer.Option("--resume", help="Continue run RUN: each host from its first "
                                               "step not done, with the run's original inputs.")] = None,
    output_format: FormatOpt = "table",
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="Live progress on stderr.")] = True,
) -> None:
    """Run a playbook on the selected hosts: probe, decide, apply, verify, record.

    Example: zetactl deploy playbooks/site.yml -i inventory/hosts.yml --limit 'control_plane' --check --diff
    """
    # SSH and the engine load only for the commands that connect (asyncssh alone costs ~0.4 s)
    from zetactl.deploy import DeployRequest
    from zetactl.deploy import deploy as run_deploy
    from zetactl.engine.fleet import FleetSettings

    check_format(output_format)
    if not resume and not str(playbook):
        raise BadInput("give a PLAYBOOK (or --resume RUN)")
    serial_items = [s for v in serial or [] for s in v.split(",") if s.strip()]
    request = DeployRequest(
        playbook=playbook, inventory=inventory_path(inventory),
        selection=Selection(limit=limit, tags=_tags(tags), skip_tags=_tags(skip_tags),
                            extra_vars=parse_extra_vars(extra_vars)),
        check=check, diff=diff, fleet=FleetSettings(forks=forks, serial=tuple(serial_items), max_fail=max_fail),
        timeout=timeout, lock_timeout=lock_timeout, connect_timeout=connect_timeout,
    )
    result = run_deploy(request, resume_run=resume, progress=progress and output_format == "table")
    code = exit_code(result.outcomes, result.interrupted)
    if output_format == "json":
        print_json(sys.stdout, json_document(result.run.run_id, result.outcomes, check=check,
                                             interrupted=result.interrupted, elapsed=result.elapsed))
    else:
        print_recap(sys.stdout, result.run.run_id, result.outcomes, check=check, diff=diff, elapsed=result.elapsed)
        if result.interrupted:
            sys.stderr.write(f"interrupted: resume with `zetactl deploy --resume {result.run.run_id}`\n")
    raise typer.Exit(int(code))


def plan(
    playbook: Annotated[Path, typer.Argument(help="Playbook file.")],
    inventory: InventoryOpt = None,  # type: ignore[assignment]
    limit: LimitOpt = None,
    tags: TagsOpt = None,
    skip_tags: SkipTagsOpt = None,
    extra_vars: ExtraVarsOpt = None,
    output_format: FormatOpt = "table",
) -> None:
    """Render and validate everything for every selected host, with no connection at all.

    Example: zetactl plan playbooks/site.yml -i inventory/hosts.yml --limit lab-001
    """
    check_format(output_format)
    built = load_plan(playbook, inventory_path(inventory),
                      Selection(limit=limit, tags=_tags(tags), skip_tags=_tags(skip_tags),
                                extra_vars=parse_extra_vars(extra_vars)))
    if output_format == "json":
        print_json(sys.stdout, {"playbook": str(playbook), "hosts": {
            hp.host.name: [{"name": ps.name, "kind": ps.decl.kind, "target": ps.step.target() if ps.step else None,
                            "skip": ps.skip_reason, "needs_facts": ps.resolve is not None,
                            "notify": list(ps.decl.notify)} for ps in hp.steps]
            for hp in built.hosts}})
        return
    rows = []
    for hp in built.hosts:
        for index, ps in enumerate(hp.steps, 1):
            note = f"skip: {ps.skip_reason}" if ps.skip_reason else (
                "rendered once the host's facts are read" if ps.resolve else (
                    f"notify: {', '.join(ps.decl.notify)}" if ps.decl.notify else ""))
            rows.append([hp.host.name, index, ps.name, ps.decl.kind, ps.step.target() if ps.step else "", note])
    sys.stdout.write(tabulate(rows, headers=["host", "#", "step", "kind", "target", "note"]) + "\n")
    steps = sum(1 for hp in built.hosts for ps in hp.steps if ps.step or ps.resolve)
    waves = make_waves([hp.host.name for hp in built.hosts], built.playbook.serial)
    gate = f", a gate of {len(built.playbook.gate)} checks between waves" if built.playbook.gate else ""
    sys.stdout.write(f"\n{built.playbook.name}: {len(built.hosts)} hosts in {len(waves)} wave(s){gate}, "
                     f"{steps} steps to check; no host was contacted\n")


def run(
    command: Annotated[str, typer.Argument(help="Shell command to run on every selected host.")],
    inventory: InventoryOpt = None,  # type: ignore[assignment]
    limit: LimitOpt = None,
    forks: Annotated[int, typer.Option("--forks", "-f", min=1)] = 100,
    timeout: Annotated[float, typer.Option("--timeout", help="Deadline per host, seconds.")] = 60.0,
    connect_timeout: Annotated[float, typer.Option("--connect-timeout")] = 10.0,
    output_format: FormatOpt = "table",
) -> None:
    """Run one ad hoc command on many hosts; output grouped per host.

    Example: zetactl run 'systemctl is-active k3s' -i inventory/hosts.yml --limit control_plane
    """
    from zetactl.adhoc import run_command
    from zetactl.remote import operator_shell, shown
    from zetactl.transport import ConnectOptions

    check_format(output_format)
    script = operator_shell(command)
    inv = load_inventory(inventory_path(inventory))
    names = select_hosts(inv, limit or "all")
    results = asyncio.run(run_command([inv.host(n) for n in names], script, forks=forks, timeout=timeout,
                                      options=ConnectOptions(connect_timeout=connect_timeout), raw=True))
    if output_format == "json":
        print_json(sys.stdout, {"command": command, "hosts": {
            r.host: {"status": r.status, "exit_status": r.exit_status, "stdout": r.stdout, "stderr": r.stderr,
                     "elapsed": round(r.elapsed, 3), "error": r.error} for r in results}})
    else:
        for r in results:
            head = f"rc={r.exit_status}" if r.status != "unreachable" else f"UNREACHABLE: {r.error}"
            sys.stdout.write(f"== {r.host} ({head}, {r.elapsed:.2f}s)\n{shown(r.stdout)}")
            if r.stderr:
                sys.stdout.write("".join(f"stderr: {shown(line)}\n" for line in r.stderr.rstrip("\n").split("\n")))
    raise typer.Exit(int(exit_code_for({r.status for r in results})))
