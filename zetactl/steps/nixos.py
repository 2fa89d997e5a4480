"""NixOS step kinds: `nixos_module` (a module file) and `nixos_rebuild` (switch, confirm or roll back).

A switch is the one change that can cut the connection it was made over. So `nixos_rebuild`:
  1. refuses to start while another switch is in flight on the node;
  2. starts the switch in a detached unit (`zeta-switch`, via systemd-run), so a dropped connection
     does not kill it; the same unit then waits `confirm_timeout` seconds for a verdict and, without
     one, rolls the node back to the generation it had before (it arms its own rollback);
  3. confirms over a FRESH connection: if zetactl can still log in, the node is reachable, and the
     verdict is written; otherwise the node rolls itself back and the host is reported `rolled-back`.
Exit codes of switch-to-configuration become distinct outcomes: 4 `failed-units`, 100
`reboot-required`, anything else `activation-failed` (rolled back when it changed anything).
"""

from __future__ import annotations

import asyncio
import base64
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

from zetactl.errors import BadInput, Unreachable
from zetactl.remote import EMPTY, Answer, BadAnswer, Records, Sh, fail, lines, names, script, source
from zetactl.remote.frame import fields, number
from zetactl.steps.base import (
    ActionContext,
    ActionResult,
    ActionStep,
    Change,
    Decision,
    NoChange,
    Observed,
    Option,
    Step,
)
from zetactl.steps.files import GROUP, MODE, OWNER, PATH, File

PROFILE = "/nix/var/nix/profiles/system"
SWITCH_DIR = "/run/zeta/switch"  # tmpfs: a reboot forgets an unfinished switch, as it should
RECORD = "/var/lib/zeta/state/nixos-switch"  # the configuration digest and system of the last confirmed switch
ROLLBACK_RECORD = "/var/lib/zeta/state/nixos-rollback"
SWITCH_UNIT = "zeta-switch.service"
FOREIGN_SWITCH_UNIT = "nixos-rebuild-switch-to-configuration.service"
SWITCH_LOCK = "/run/nixos/switch-to-configuration.lock"
NIX_ERROR_AT = re.compile(r"at (?P<path>/\S+?):(?P<line>\d+):(?P<col>\d+):")


class NixosModule(File):
    """A NixOS module file (usually under /etc/nixos), rendered from a template or given inline.

    Every rendered module is parsed with `nix-instantiate --parse` on the controller (when that tool
    is installed): at plan time, before any host is touched; a module whose rendering reads facts,
    once its host's facts are in (before anything is written to that host).
    """

    kind: ClassVar[str] = "nixos_module"
    payload_option: ClassVar[str | None] = "src"
    payload_is_template: ClassVar[bool] = True
    options: ClassVar[dict[str, Option]] = {
        "dest": PATH, "src": Option((str,), help="template path, relative to the playbook"),
        "content": Option((str,)), "mode": MODE, "owner": OWNER, "group": GROUP,
        "state": Option((str,), default="present", choices=("present", "absent")),
        "validate": Option((bool,), default=True, help="parse with nix-instantiate --parse before deploying"),
    }

    def setup(self) -> None:
        dest = self.args.pop("dest")
        if not str(dest).endswith(".nix"):
            raise self.where.error(f"nixos_module: dest must be a .nix file, not {dest!r}")
        self.args["path"] = dest
        self.args["source"] = self.args.pop("src")
        self.args["sensitive"] = False
        if self.args["state"] == "present" and (self.args["content"] is None) == (self.args["source"] is None):
            raise self.where.error("nixos_module: give exactly one of 'src' or 'content'")
        super().setup()

    @classmethod
    def validate_all(cls, steps: Sequence[tuple[str, Step]]) -> str | None:
        """Parse every distinct rendered module in one nix-instantiate call; None, or why it was skipped."""
        modules: dict[bytes, tuple[str, NixosModule]] = {}
        for host, step in steps:
            if isinstance(step, NixosModule) and step.args["validate"] and step.args["state"] == "present":
                modules.setdefault(step.data, (host, step))
        if not modules:
            return None
        tool = shutil.which("nix-instantiate")
        if tool is None:
            return "nix-instantiate is not installed: NixOS modules were not syntax-checked"
        with tempfile.TemporaryDirectory(prefix="zetactl-nix-") as tmp:
            paths: dict[str, tuple[str, NixosModule]] = {}
            for index, (data, (host, step)) in enumerate(modules.items()):
                path = Path(tmp) / f"{index}.nix"
                path.write_bytes(data)
                paths[str(path)] = (host, step)
            proc = subprocess.run([tool, "--parse", *paths], capture_output=True, text=True, timeout=120,
                                  stdin=subprocess.DEVNULL)
            if proc.returncode == 0:
                return None
            match = NIX_ERROR_AT.search(proc.stderr)
            message = proc.stderr.strip().splitlines()[0] if proc.stderr.strip() else f"exit {proc.returncode}"
            if match is None or match["path"] not in paths:
                raise BadInput(f"nixos_module: nix-instantiate --parse failed: {message}")
            host, step = paths[match["path"]]
            line = int(match["line"])
            lines = step.data.decode(errors="replace").splitlines()
            text = lines[line - 1].strip() if 0 < line <= len(lines) else ""
            origin = f"rendered from {step.args['source']}" if step.args["source"] else "inline content"
            raise step.where.error(
                f"nixos_module {step.path} ({origin}, host {host}) is not valid Nix: line {line}, column "
                f"{match['col']}: {message.removeprefix('error: ')}" + (f"\n    {line}| {text}" if text else ""))


class NixosRebuild(ActionStep):
    kind: ClassVar[str] = "nixos_rebuild"
    options: ClassVar[dict[str, Option]] = {
        "action": Option((str,), default="switch", choices=("switch", "test", "boot")),
        "confirm_timeout": Option((int, float), default=60,
                                  help="seconds for zetactl to confirm over a fresh connection before the "
                                       "node rolls itself back"),
        "switch_timeout": Option((int, float), default=900, help="seconds the build and activation may take"),
        "rollback_on_failed_units": Option((bool,), default=False,
                                           help="also roll back when units fail after the switch"),
        "config_dir": Option((str,), default="/etc/nixos"),
    }

    def setup(self) -> None:
        for key in ("confirm_timeout", "switch_timeout"):
            if not 5 <= float(self.args[key]) <= 86400:
                raise self.where.error(f"nixos_rebuild: {key} must be between 5 and 86400 seconds")
        try:
            names.path(self.args["config_dir"], "nixos_rebuild: config_dir")
        except BadInput as exc:
            raise self.where.error(exc.message) from None

    def target(self) -> str:
        return f"{self.args['action']} {self.args['config_dir']}"

    def touches(self) -> tuple[str, ...]:
        return ("/",)

    def reads(self) -> tuple[str, ...]:
        return (str(self.args["config_dir"]),)

    def extra_time(self) -> float:
        # build + activation, the confirmation window, then watching the node's own rollback
        return float(self.args["switch_timeout"]) + 3 * float(self.args["confirm_timeout"]) + 120

    def probe_script(self) -> Sh:
        return lines(source("nixos_digest.sh"),
                     script("nixos_probe.sh", CONFIG_DIR=self.args["config_dir"], RECORD=RECORD, PROFILE=PROFILE,
                            SWITCH_UNIT=SWITCH_UNIT, FOREIGN_UNIT=FOREIGN_SWITCH_UNIT))

    def decide(self, observed: Observed) -> Decision:
        digest = observed.get("digest", "")
        if not digest or digest == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855":
            return Change(f"no configuration in {self.args['config_dir']}",
                          fail(f"no configuration files in {self.args['config_dir']}"))
        generation = observed.get("generation", "?")
        recorded = fields(observed.get("recorded", ""), RECORD)
        same = recorded.get("digest") == digest
        if self.args["action"] == "boot":
            if same and recorded.get("profile") == observed.get("profile"):
                return NoChange(f"generation {generation} (next boot) has this configuration ({digest[:12]})")
        elif same and recorded.get("system") == observed.get("current"):
            return NoChange(f"generation {generation} runs this configuration ({digest[:12]})")
        why = "configuration changed" if recorded.get("digest") else "not switched by zetactl yet"
        return Change(f"nixos-rebuild {self.args['action']} ({why}; now generation {generation})", EMPTY)

    def verify(self, observed: Observed, apply_output: str) -> str | None:
        return None  # execute() confirms over a fresh connection; nothing to re-read here

    # -- the switch conversation -------------------------------------------------------------
    async def execute(self, change: Change, ctx: ActionContext) -> ActionResult:
        state = f"{SWITCH_DIR}/{ctx.run_id}"
        timings: dict[str, float] = {}
        began = time.monotonic()
        begin = await ctx.run(self._start_script(state), timeout=60)
        started = answered(begin)
        if "inflight" in started:
            return ActionResult(False, "refused", "failed",
                                f"another switch is in flight on this node ({started['inflight']}): not starting "
                                "a second one; wait for it to end (journalctl -u zeta-switch, or the unit named)",
                                timings)
        if "started" not in started and "resumed" not in started:
            return ActionResult(False, "could not start the switch", "activation-failed",
                                f"starting the switch unit failed (exit {begin.rc}): {tail(begin.err)}", timings)
        ctx.note("switch-resumed" if "resumed" in started else "switch-started", unit=SWITCH_UNIT,
                 previous=started.get("previous_generation", ""))
        previous = started.get("previous_generation", "?")
        result, lost = await self._wait_result(ctx, state)
        timings["switch"] = time.monotonic() - began
        if not lost and (not result or result.get("died")):
            try:
                journal = answered(await ctx.run(script("nixos_journal.sh", UNIT=SWITCH_UNIT), timeout=20)).get(
                    "journal", "")
            except Unreachable:
                journal = ""
            why = "ended without a result" if result else f"gave no result within {self.args['switch_timeout']:g}s"
            return ActionResult(False, "switch job failed", "activation-failed",
                                f"the switch unit {SWITCH_UNIT} {why}: {tail(journal)}", timings)
        marked = time.monotonic()
        verdict, answer, last_error = await self._confirm(ctx, state)
        timings["confirm"] = time.monotonic() - marked
        result = {**result, **answer}
        rolled: dict[str, str] = {}
        if verdict != "confirmed":
            # No fresh connection got through, or the node (or we) chose to roll back: see it happen.
            marked = time.monotonic()
            rolled = await self._wait_rollback(ctx, state)
            timings["rollback"] = time.monotonic() - marked
            if verdict is None and rolled.get("verdict") == "confirmed":
                verdict = "confirmed"  # our confirmation got there; only its answer was lost
                result = {**result, **rolled}
        if verdict is None or verdict == "timeout":
            why = ("connection lost during the switch, " if lost else "") + (last_error or "the node decided first")
            return ActionResult(False, "rolled back", "rolled-back",
                                f"no confirmation within {self.args['confirm_timeout']:g}s ({why}); "
                                f"{describe_rollback(rolled, previous)}", timings)
        code = number(result.get("rc", ""))
        rc = code if code is not None else 1
        generation = result.get("generation", "?")
        if verdict == "rollback":
            status = "failed-units" if rc == 4 else "activation-failed"
            return ActionResult(False, "rolled back", status,
                                f"{describe_rc(rc)}; {describe_rollback(rolled, previous)}{log_tail(result)}", timings)
        if verdict != "confirmed":
            return ActionResult(False, "unknown verdict", "activation-failed",
                                f"the node recorded an unknown verdict {verdict!r} for this switch; check "
                                f"{state} and journalctl -u {SWITCH_UNIT}", timings)
        if rc == 0:
            return ActionResult(True, f"switched to generation {generation} (confirmed over a fresh connection)",
                                timings=timings)
        if rc == 100:
            return ActionResult(True, f"generation {generation} installed; takes effect after a reboot",
                                "reboot-required", describe_rc(rc), timings)
        if rc == 4:
            return ActionResult(False, f"switched to generation {generation}, units failed", "failed-units",
                                f"{describe_rc(rc)}{log_tail(result)}", timings)
        return ActionResult(False, "switch failed, nothing changed", "activation-failed",
                            f"{describe_rc(rc)}{log_tail(result)}", timings)

    def _start_script(self, state: str) -> Sh:
        return script("nixos_start.sh", S=state, SWITCH_DIR=SWITCH_DIR, SWITCH_UNIT=SWITCH_UNIT,
                      FOREIGN_UNIT=FOREIGN_SWITCH_UNIT, SWITCH_LOCK=SWITCH_LOCK, PROFILE=PROFILE,
                      JOB=self.job_script(state))

    def job_script(self, state: str) -> Sh:
        """What the detached unit runs (a file of its own on the node: $S/job.sh, run by /bin/sh)."""
        action = self.args["action"]
        confirm = 0 if action == "boot" else int(float(self.args["confirm_timeout"]))
        return lines(Sh("#!/bin/sh"), Sh("# zetactl switch job (unit zeta-switch): switch, then confirm-or-rollback"),
                     source("nixos_digest.sh"),
                     script("nixos_job.sh", JOB_PATH=JOB_PATH, S=state, ACTION=action, CONFIRM=confirm,
                            SWITCH_TIMEOUT=int(float(self.args["switch_timeout"])), CONFIG_DIR=self.args["config_dir"],
                            REACTIVATE="switch" if action == "switch" else "test", ROLLBACK_RECORD=ROLLBACK_RECORD))

    async def _wait_result(self, ctx: ActionContext, state: str) -> tuple[dict[str, str], bool]:
        """Wait on the node (one channel) for the switch's result; ({}, True) when the connection drops.

        The job itself stops nixos-rebuild at switch_timeout, so a result always comes unless the
        job dies (then the unit is gone: {"died": "yes"}) or the connection does.
        """
        try:
            waited = await ctx.run(script("nixos_wait.sh", S=state, UNIT=SWITCH_UNIT),
                                   timeout=float(self.args["switch_timeout"]) + 30)
        except Unreachable:
            return {}, True
        if waited.rc is None:
            return {}, True
        result = fields(answered(waited).get("result", ""), "the switch's result")
        if "rc" in result:
            return result, False
        return {"rc": "1", "died": "yes"}, False

    async def _confirm(self, ctx: ActionContext, state: str) -> tuple[str | None, dict[str, str], str]:
        """Write the verdict over a fresh connection: (verdict, or None when no connection got through).

        Each attempt gets a full login's time even near the deadline: a late answer is still read.
        """
        window = float(self.args["confirm_timeout"])
        deadline = time.monotonic() + max(1.0, window - 2)
        hard_deadline = time.monotonic() + float(self.args["switch_timeout"]) + window
        confirm = script("nixos_confirm.sh", S=state, RECORD=RECORD, RUN_ID=ctx.run_id,
                         RB4=1 if self.args["rollback_on_failed_units"] else 0)
        last_error = ""
        while time.monotonic() < min(deadline, hard_deadline):
            try:
                answer = answered(await ctx.run_fresh(confirm, timeout=15.0))
            except Unreachable as exc:
                last_error = str(exc)
                await asyncio.sleep(1)
                continue
            except BadAnswer as exc:
                answer, last_error = {}, str(exc)
            if answer.get("state") == "pending":  # still building or activating: the node's clock has not started
                deadline = time.monotonic() + window
                await asyncio.sleep(1)
                continue
            if "verdict" in answer:
                result = {**fields(answer.get("result", ""), "the switch's result"),
                          **{k: v for k, v in answer.items() if k != "result"}}
                return answer["verdict"], result, ""
            last_error = last_error or "confirm script gave no verdict"
            await asyncio.sleep(1)
        return None, {}, last_error

    async def _wait_rollback(self, ctx: ActionContext, state: str) -> dict[str, str]:
        """Read how the switch ended once it has (bounded): the rollback record, or a late confirmation."""
        deadline = time.monotonic() + float(self.args["confirm_timeout"]) + 60
        ended = script("nixos_ended.sh", S=state)
        while time.monotonic() < deadline:
            try:
                answer = answered(await ctx.run_fresh(ended, timeout=15.0))
                if "verdict" in answer:
                    found = {**fields(answer.get("result", ""), "the switch's result"), "verdict": answer["verdict"]}
                else:
                    found = fields(answer.get("rolled", ""), "the rollback record")
                if "verdict" in found:
                    ctx.note("switch-ended", verdict=found["verdict"], generation=found.get("generation", ""))
                    return found
            except (Unreachable, BadAnswer):
                pass
            await asyncio.sleep(1)
        return {}


# The job's PATH: a unit started by systemd-run on NixOS gets only systemd's own bin directory.
JOB_PATH = ("/run/wrappers/bin:/run/current-system/sw/bin:/nix/var/nix/profiles/default/bin:"
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")

def describe_rollback(rolled: dict[str, str], previous: str) -> str:
    if not rolled or rolled.get("verdict") == "confirmed":
        return f"the node rolls back to generation {previous} by itself (not observed: still unreachable)"
    if rolled.get("rollback_rc", "0") != "0":
        return (f"the rollback to generation {rolled.get('generation', previous)} FAILED "
                f"(switch-to-configuration exit {rolled['rollback_rc']}; see /run/zeta/switch/*/rollback.log)")
    return f"the node is back on generation {rolled.get('generation', previous)}"


def answered(answer: Answer) -> dict[str, str]:
    """The fields a switch script answered (records; BadAnswer when the answer is not well formed)."""
    records: Records = answer.records()
    return {tag: records.text(tag) for tag in records}


def describe_rc(rc: int) -> str:
    return {
        1: "switch failed (exit 1: build, usage or pre-switch check failure)",
        2: "activation script failed (exit 2)",
        4: "units failed after the switch (exit 4)",
        100: "reboot required: the new configuration has an incompatible init (exit 100)",
        124: "switch timed out (switch_timeout)",
    }.get(rc, f"switch failed (exit {rc})")


def log_tail(result: dict[str, str]) -> str:
    """The failed units, else the last lines of the switch's output (for the report)."""
    if result.get("failed_units"):
        return f": {result['failed_units']}"
    try:
        text = base64.b64decode(result.get("log_tail", "")).decode(errors="replace").strip()
    except ValueError:
        text = ""
    return ("\n" + "\n".join(f"    {line}" for line in text.split("\n")[-6:])) if text else ""


def tail(text: str, lines: int = 5) -> str:
    return " | ".join(text.strip(" \t\r\n").split("\n")[-lines:])
