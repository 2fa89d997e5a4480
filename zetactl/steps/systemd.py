"""The systemd step kind: a unit's active state and whether it is enabled."""

from __future__ import annotations

from typing import ClassVar

from zetactl.errors import BadInput
from zetactl.remote import BadAnswer, Sh, fail, lines, names, sh, shown
from zetactl.steps.base import Change, Decision, NoChange, Observed, Option, Step

ENABLED_STATES = ("enabled", "enabled-runtime", "static", "alias", "indirect", "generated", "linked")


class Systemd(Step):
    kind: ClassVar[str] = "systemd"
    options: ClassVar[dict[str, Option]] = {
        "unit": Option((str,), required=True, help="unit name; '.service' is added when no suffix"),
        "state": Option((str,), choices=("started", "stopped", "restarted", "reloaded")),
        "enabled": Option((bool,)),
        "daemon_reload": Option((bool,), default=False),
    }

    def setup(self) -> None:
        try:
            self.args["unit"] = names.unit(self.args["unit"], "systemd: unit")
        except BadInput as exc:
            raise self.where.error(exc.message) from None
        if self.args["state"] is None and self.args["enabled"] is None:
            raise self.where.error("systemd: give 'state', 'enabled' or both")

    @property
    def unit(self) -> str:
        return str(self.args["unit"])

    def target(self) -> str:
        return self.unit

    def touches(self) -> tuple[str, ...]:
        return (f"unit:{self.unit}",)

    def probe_script(self) -> Sh:
        return sh(Sh('zv show "$(systemctl show -p LoadState,ActiveState,UnitFileState --'), self.unit, Sh(')"'))

    def decide(self, observed: Observed) -> Decision:
        observed = show_properties(observed)
        if observed.get("LoadState") == "not-found":
            return Change(f"unit {self.unit} not found", fail(f"unit {self.unit} not found on this node"))
        actions: list[str] = []
        commands: list[Sh] = [Sh("systemctl daemon-reload")] if self.args["daemon_reload"] else []
        enabled = self.args["enabled"]
        file_state = observed.get("UnitFileState", "")
        if enabled is True and file_state not in ENABLED_STATES:
            actions.append("enable")
            commands.append(sh(Sh("systemctl enable --"), self.unit))
        elif enabled is False and file_state in ("enabled", "enabled-runtime", "linked"):
            actions.append("disable")
            commands.append(sh(Sh("systemctl disable --"), self.unit))
        state = self.args["state"]
        active = observed.get("ActiveState", "inactive")
        verb = {"started": "start", "stopped": "stop", "restarted": "restart", "reloaded": "reload"}.get(state or "")
        running = active in ("active", "activating", "reloading")
        if (state == "started" and active != "active") or (state == "stopped" and running) \
                or state in ("restarted", "reloaded"):
            actions.append(str(verb))
            commands.append(sh(Sh("systemctl"), str(verb), Sh("--"), self.unit))
        if not actions:
            return NoChange(f"{self.unit} is {active}" + (f" and {file_state}" if enabled is not None else ""))
        return Change(f"{' + '.join(actions)} {self.unit}", lines(*commands))

    def verify(self, observed: Observed, apply_output: str) -> str | None:
        observed = show_properties(observed)
        active = observed.get("ActiveState")
        state = self.args["state"]
        if state in ("started", "restarted", "reloaded") and active != "active":
            return f"{self.unit} is {active} after {state[:-2] if state != 'stopped' else 'stop'}"
        if state == "stopped" and active in ("active", "activating"):
            return f"{self.unit} is still {active}"
        enabled = self.args["enabled"]
        file_state = observed.get("UnitFileState", "")
        if enabled is True and file_state not in ENABLED_STATES:
            return f"{self.unit} is {file_state} after enable"
        if enabled is False and file_state in ("enabled", "enabled-runtime"):
            return f"{self.unit} is still {file_state}"
        return None


def show_properties(observed: Observed) -> dict[str, str]:
    """The `Key=Value` lines `systemctl show` wrote into the field `show` (a key twice is bad output)."""
    properties: dict[str, str] = {}
    for line in observed.get("show", "").split("\n"):
        if not line:
            continue
        key, equals, value = line.partition("=")
        if not equals or key in properties:
            raise BadAnswer("the unit's properties hold a line that is not Key=Value once: "
                            f"{shown(line[:60], line=True)!r}")
        properties[key] = value
    return properties
