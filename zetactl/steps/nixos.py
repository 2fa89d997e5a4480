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
import secrets
import shutil
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

from zetactl.errors import BadInput, Unreachable
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
    q,
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


def config_digest_command(config_dir: str) -> str:
    """sh printing the sha256 over every file of the configuration (names and contents)."""
    return (f"cd {q(config_dir)} 2>/dev/null && find -L . -type f ! -name '.*' | LC_ALL=C sort | "
            "xargs -r sha256sum | sha256sum | cut -d' ' -f1")


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
        config_dir = str(self.args["config_dir"])
        if not config_dir.startswith("/") or any(ord(c) < 32 or c == "\x7f" for c in config_dir):
            raise self.where.error("nixos_rebuild: config_dir must be an absolute path without control characters")

    def target(self) -> str:
        return f"{self.args['action']} {self.args['config_dir']}"

    def touches(self) -> tuple[str, ...]:
        return ("/",)

    def reads(self) -> tuple[str, ...]:
        return (str(self.args["config_dir"]),)

    def extra_time(self) -> float:
        # build + activation, the confirmation window, then watching the node's own rollback
        return float(self.args["switch_timeout"]) + 3 * float(self.args["confirm_timeout"]) + 120

    def probe_script(self) -> str:
        return "\n".join([
            f"echo \"digest $({config_digest_command(self.args['config_dir'])})\"",
            f"[ -f {RECORD} ] && sed 's/^/recorded_/' {RECORD}",
            "echo \"current $(readlink -f /run/current-system 2>/dev/null)\"",
            f"echo \"profile $(readlink -f {PROFILE} 2>/dev/null)\"",
            f"zg=$(readlink {PROFILE} 2>/dev/null); zg=${{zg#system-}}; echo \"generation ${{zg%-link}}\"",
            f"systemctl is-active --quiet {SWITCH_UNIT} {FOREIGN_SWITCH_UNIT} 2>/dev/null && echo 'inflight yes'",
            ":",
        ])

    def decide(self, observed: Observed) -> Decision:
        digest = observed.get("digest", "")
        if not digest or digest == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855":
            return Change(f"no configuration in {self.args['config_dir']}",
                          f"echo {q('no configuration files in ' + str(self.args['config_dir']))} >&2; exit 1")
        generation = observed.get("generation", "?")
        same = observed.get("recorded_digest") == digest
        if self.args["action"] == "boot":
            if same and observed.get("recorded_profile") == observed.get("profile"):
                return NoChange(f"generation {generation} (next boot) has this configuration ({digest[:12]})")
        elif same and observed.get("recorded_system") == observed.get("current"):
            return NoChange(f"generation {generation} runs this configuration ({digest[:12]})")
        why = "configuration changed" if observed.get("recorded_digest") else "not switched by zetactl yet"
        return Change(f"nixos-rebuild {self.args['action']} ({why}; now generation {generation})", "")

    def verify(self, observed: Observed, apply_output: str) -> str | None:
        return None  # execute() confirms over a fresh connection; nothing to re-read here

    # -- the switch conversation -------------------------------------------------------------
    async def execute(self, change: Change, ctx: ActionContext) -> ActionResult:
        state = f"{SWITCH_DIR}/{ctx.run_id}"
        timings: dict[str, float] = {}
        started = time.monotonic()
        begin = await ctx.run(self._start_script(state), timeout=60)
        fields = parse_fields(begin.stdout)
        if "inflight" in fields:
            return ActionResult(False, "refused", "failed",
                                f"another switch is in flight on this node ({fields['inflight']}): not starting "
                                "a second one; wait for it to end (journalctl -u zeta-switch, or the unit named)",
                                timings)
        if "started" not in fields and "resumed" not in fields:
            return ActionResult(False, "could not start the switch", "activation-failed",
                                f"starting the switch unit failed (exit {begin.rc}): "
                                f"{tail(begin.stderr or begin.stdout)}", timings)
        ctx.note("switch-resumed" if "resumed" in fields else "switch-started", unit=SWITCH_UNIT,
                 previous=fields.get("previous_generation", ""))
        previous = fields.get("previous_generation", "?")
        result, lost = await self._wait_result(ctx, state)
        timings["switch"] = time.monotonic() - started
        if not lost and (not result or result.get("died")):
            try:
                journal = (await ctx.run(f"journalctl -u {SWITCH_UNIT} -n 12 -o cat --no-pager; :", timeout=20)).stdout
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
        rc = int(result["rc"]) if result.get("rc", "").lstrip("-").isdigit() else 1
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

    def _start_script(self, state: str) -> str:
        action = self.args["action"]
        confirm = 0 if action == "boot" else int(float(self.args["confirm_timeout"]))
        job = JOB_SCRIPT.format(state=q(state), action=action, confirm=confirm,
                                switch_timeout=int(float(self.args["switch_timeout"])),
                                digest=config_digest_command(self.args["config_dir"]),
                                reactivate="switch" if action == "switch" else "test", path=JOB_PATH)
        end = f"ZETA_JOB_{secrets.token_hex(8)}"  # a value can never close the here-document
        return f"""set -u
S={q(state)}
if systemctl is-active --quiet {SWITCH_UNIT} 2>/dev/null && [ -f "$S/job.sh" ]; then
  g=$(cat "$S/previous-link"); g=${{g#system-}}; echo "previous_generation ${{g%-link}}"
  echo "resumed yes"; exit 0   # this run's own switch (a resumed run): wait for it again
fi
if systemctl is-active --quiet {SWITCH_UNIT} {FOREIGN_SWITCH_UNIT} 2>/dev/null; then
  for u in {SWITCH_UNIT} {FOREIGN_SWITCH_UNIT}; do
    systemctl is-active --quiet "$u" && echo "inflight unit $u is $(systemctl show -p ActiveState --value "$u")"
  done; exit 0
fi
mkdir -p /run/nixos /var/lib/zeta/state
if ! flock -n {SWITCH_LOCK} true 2>/dev/null; then echo "inflight {SWITCH_LOCK} is held"; exit 0; fi
find {SWITCH_DIR} -mindepth 1 -maxdepth 1 -exec rm -rf {{}} + 2>/dev/null  # earlier, finished switches
mkdir -p "$S" || exit 1
prevgen=$(readlink {PROFILE}) || {{ echo "no system profile at {PROFILE}" >&2; exit 1; }}
printf '%s\\n' "$(readlink -f {PROFILE})" > "$S/previous"
printf '%s\\n' "$prevgen" > "$S/previous-link"
cat > "$S/job.sh" <<'{end}'
{job}
{end}
systemctl reset-failed {SWITCH_UNIT} 2>/dev/null
set --
for v in NIX_PATH LOCALE_ARCHIVE; do eval "[ -n \\"\\${{$v:-}}\\" ]" && set -- "$@" -E "$v"; done
systemd-run --unit={SWITCH_UNIT} --collect --no-ask-password --quiet --service-type=exec "$@" \\
  /bin/sh "$S/job.sh" || exit 1
g=${{prevgen#system-}}; echo "previous_generation ${{g%-link}}"
echo "started yes"
"""

    async def _wait_result(self, ctx: ActionContext, state: str) -> tuple[dict[str, str], bool]:
        """Wait on the node (one channel) for the switch's result; ({}, True) when the connection drops.

        The job itself stops nixos-rebuild at switch_timeout, so a result always comes unless the
        job dies (then the unit is gone: {"died": "yes"}) or the connection does.
        """
        try:
            waited = await ctx.run(WAIT_SCRIPT.format(state=q(state), unit=SWITCH_UNIT),
                                   timeout=float(self.args["switch_timeout"]) + 30)
        except Unreachable:
            return {}, True
        if waited.rc is None:
            return {}, True
        fields = parse_fields(waited.stdout)
        if "rc" in fields:
            return fields, False
        return {"rc": "1", "died": "yes"}, False

    async def _confirm(self, ctx: ActionContext, state: str) -> tuple[str | None, dict[str, str], str]:
        """Write the verdict over a fresh connection: (verdict, or None when no connection got through).

        Each attempt gets a full login's time even near the deadline: a late answer is still read.
        """
        window = float(self.args["confirm_timeout"])
        deadline = time.monotonic() + max(1.0, window - 2)
        hard_deadline = time.monotonic() + float(self.args["switch_timeout"]) + window
        script = CONFIRM_SCRIPT.format(state=q(state), record=RECORD, run_id=q(ctx.run_id),
                                       rb4=1 if self.args["rollback_on_failed_units"] else 0)
        last_error = ""
        while time.monotonic() < min(deadline, hard_deadline):
            try:
                answer = await ctx.run_fresh(script, timeout=15.0)
            except Unreachable as exc:
                last_error = str(exc)
                await asyncio.sleep(1)
                continue
            fields = parse_fields(answer.stdout)
            if fields.get("state") == "pending":  # still building or activating: the node's clock has not started
                deadline = time.monotonic() + window
                await asyncio.sleep(1)
                continue
            if "verdict" in fields:
                return fields["verdict"], fields, ""
            last_error = f"confirm script gave no verdict (exit {answer.rc}): {tail(answer.stderr)}"
            await asyncio.sleep(1)
        return None, {}, last_error

    async def _wait_rollback(self, ctx: ActionContext, state: str) -> dict[str, str]:
        """Read how the switch ended once it has (bounded): the rollback record, or a late confirmation."""
        deadline = time.monotonic() + float(self.args["confirm_timeout"]) + 60
        script = (f"S={q(state)}; v=$(readlink \"$S/verdict\" 2>/dev/null); "
                  "if [ \"$v\" = confirmed ]; then echo \"verdict confirmed\"; cat \"$S/result\"; "
                  "else cat \"$S/rolled-back\" 2>/dev/null; fi; :")
        while time.monotonic() < deadline:
            try:
                fields = parse_fields((await ctx.run_fresh(script, timeout=15.0)).stdout)
                if "verdict" in fields:
                    ctx.note("switch-ended", verdict=fields["verdict"], generation=fields.get("generation", ""))
                    return fields
            except Unreachable:
                pass
            await asyncio.sleep(1)
        return {}


# The job's PATH: a unit started by systemd-run on NixOS gets only systemd's own bin directory.
JOB_PATH = ("/run/wrappers/bin:/run/current-system/sw/bin:/nix/var/nix/profiles/default/bin:"
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")

# Runs on the node, detached, as the zeta-switch unit: switch, publish the result, wait for the
# verdict, roll back without one. `{confirm}` 0 (boot): nothing to guard, the running system is unchanged.
# The verdict is a symlink `verdict -> confirmed|rollback|timeout`: `ln -s` is atomic and carries
# its value, so the node's timer and the controller can never both decide, and nobody reads half of it.
JOB_SCRIPT = r"""# zetactl switch job (unit zeta-switch): switch, then confirm-or-rollback
export PATH={path}
S={state}
P=/nix/var/nix/profiles/system
prev=$(cat "$S/previous"); prevgen=$(cat "$S/previous-link")
cd /
digest=$({digest})
timeout {switch_timeout} nixos-rebuild {action} > "$S/log" 2>&1
rc=$?
g=$(readlink "$P"); g=${{g#system-}}; g=${{g%-link}}
printf 'rc %s\nnew %s\ncurrent %s\ngeneration %s\ndigest %s\nfinished %s\n' "$rc" "$(readlink -f "$P")" \
  "$(readlink -f /run/current-system)" "$g" "$digest" "$(date +%s)" > "$S/result.tmp"
mv -f "$S/result.tmp" "$S/result"
if [ {confirm} -eq 0 ]; then ln -s confirmed "$S/verdict" 2>/dev/null; exit 0; fi
i=0
while [ "$i" -lt {confirm} ] && [ ! -L "$S/verdict" ]; do sleep 1; i=$((i + 1)); done
ln -s timeout "$S/verdict" 2>/dev/null
verdict=$(readlink "$S/verdict")
[ "$verdict" = confirmed ] && exit 0
pg=${{prevgen#system-}}; pg=${{pg%-link}}
{{
  echo "zetactl: verdict '$verdict': rolling back to $prevgen ($prev)"
  [ "$(readlink "$P")" = "$prevgen" ] || nix-env -p "$P" --switch-generation "$pg"
  "$prev/bin/switch-to-configuration" {reactivate}
}} > "$S/rollback.log" 2>&1
rrc=$?
printf 'verdict %s\ngeneration %s\nsystem %s\nfrom %s\nrollback_rc %s\nat %s\n' "$verdict" "$pg" \
  "$(readlink -f /run/current-system)" "$(sed -n 's/^new //p' "$S/result")" "$rrc" "$(date +%s)" > "$S/rolled-back.tmp"
R=/var/lib/zeta/state/nixos-rollback
cp "$S/rolled-back.tmp" "$R.tmp" && mv -f "$R.tmp" "$R"
mv -f "$S/rolled-back.tmp" "$S/rolled-back"
"""

# Waits on the node for the job's result; checks every second that the job is still there.
WAIT_SCRIPT = r"""S={state}; n=0
while [ ! -f "$S/result" ]; do
  n=$((n + 1))
  if [ $((n % 10)) -eq 0 ] && ! systemctl is-active --quiet {unit}; then
    sleep 0.2; [ -f "$S/result" ] || {{ echo "unit $(systemctl is-active {unit})"; exit 0; }}
  fi
  sleep 0.1
done
cat "$S/result"
"""

# Runs over a fresh connection: proves the node reachable, and writes the verdict (once: ln -s is atomic).
CONFIRM_SCRIPT = r"""S={state}
[ -f "$S/result" ] || {{ echo "state pending"; exit 0; }}
rc=$(sed -n 's/^rc //p' "$S/result"); new=$(sed -n 's/^new //p' "$S/result")
cur=$(sed -n 's/^current //p' "$S/result"); prev=$(cat "$S/previous")
want=confirmed
case "$rc" in
  0|100) ;;
  4) [ {rb4} -eq 1 ] && want=rollback ;;
  *) if [ "$new" != "$prev" ] || [ "$cur" != "$prev" ]; then want=rollback; fi ;;
esac
ln -s "$want" "$S/verdict" 2>/dev/null
verdict=$(readlink "$S/verdict")
echo "verdict $verdict"
cat "$S/result"
echo "log_tail $(tail -n 12 "$S/log" 2>/dev/null | base64 -w0)"
echo "failed_units $(sed -n 's/^warning: the following units failed: //p' "$S/log" | tail -n 1)"
if [ "$verdict" = confirmed ] && {{ [ "$rc" = 0 ] || [ "$rc" = 4 ]; }}; then
  d=$(sed -n 's/^digest //p' "$S/result")
  printf 'digest %s\nsystem %s\nprofile %s\nrun %s\n' "$d" "$(readlink -f /run/current-system)" "$new" {run_id} \
    > {record}.tmp
  mv -f {record}.tmp {record}
fi
"""


def describe_rollback(rolled: dict[str, str], previous: str) -> str:
    if not rolled or rolled.get("verdict") == "confirmed":
        return f"the node rolls back to generation {previous} by itself (not observed: still unreachable)"
    if rolled.get("rollback_rc", "0") != "0":
        return (f"the rollback to generation {rolled.get('generation', previous)} FAILED "
                f"(switch-to-configuration exit {rolled['rollback_rc']}; see /run/zeta/switch/*/rollback.log)")
    return f"the node is back on generation {rolled.get('generation', previous)}"


def parse_fields(text: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        if key and key not in fields:
            fields[key] = value.strip()
    return fields


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
    return ("\n" + "\n".join(f"    {line}" for line in text.splitlines()[-6:])) if text else ""


def tail(text: str, lines: int = 5) -> str:
    return " | ".join(text.strip().splitlines()[-lines:])
