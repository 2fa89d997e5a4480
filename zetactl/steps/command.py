"""The command step kind: run a shell command unless `creates` exists or `unless` succeeds."""

from __future__ import annotations

from typing import ClassVar

from zetactl.steps.base import Change, Decision, NoChange, Observed, Option, Step, q


class Command(Step):
    kind: ClassVar[str] = "command"
    barrier: ClassVar[bool] = True  # a command can change anything: re-probe what follows
    options: ClassVar[dict[str, Option]] = {
        "cmd": Option((str,), required=True, help="shell command, run with sh -c semantics"),
        "creates": Option((str,), help="skip when this path exists"),
        "unless": Option((str,), help="skip when this command exits 0 (a read-only check)"),
        "chdir": Option((str,), help="working directory"),
    }

    def target(self) -> str:
        return str(self.args["cmd"]).splitlines()[0][:60]

    def touches(self) -> tuple[str, ...]:
        return ("/",)

    def reads(self) -> tuple[str, ...]:
        """`creates` alone reads one path; `unless` may read anything; neither reads nothing."""
        creates = self.args.get("creates")
        if self.args.get("unless") or (creates and not str(creates).startswith("/")):
            return ("/",)
        return (str(creates),) if creates else ()

    def _in_dir(self, command: str) -> str:
        chdir = self.args.get("chdir")
        return f"cd {q(chdir)} && {command}" if chdir else command

    def probe_script(self) -> str:
        lines = []
        if self.args.get("creates"):
            lines.append(f"[ -e {q(self.args['creates'])} ] && echo 'creates yes'")
        if self.args.get("unless"):
            check = self._in_dir(self.args["unless"])
            lines.append(f"( {check} ) >/dev/null 2>&1 </dev/null && echo 'unless ok'")
        return "\n".join(lines)

    def decide(self, observed: Observed) -> Decision:
        if observed.get("creates") == "yes":
            return NoChange(f"{self.args['creates']} exists")
        if observed.get("unless") == "ok":
            return NoChange("`unless` check succeeded")
        return Change(f"run: {self.target()}", self._in_dir(self.args["cmd"]))

    def verify(self, observed: Observed, apply_output: str) -> str | None:
        if self.args.get("creates") and observed.get("creates") != "yes":
            return f"the command ran but {self.args['creates']} still does not exist"
        return None
