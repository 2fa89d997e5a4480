"""The command step kind: run a shell command unless `creates` exists or `unless` succeeds."""

from __future__ import annotations

from typing import ClassVar

from zetactl.errors import BadInput
from zetactl.remote import Sh, lines, names, operator_shell, sh
from zetactl.steps.base import Change, Decision, NoChange, Observed, Option, Step


class Command(Step):
    kind: ClassVar[str] = "command"
    barrier: ClassVar[bool] = True  # a command can change anything: re-probe what follows
    options: ClassVar[dict[str, Option]] = {
        "cmd": Option((str,), required=True, help="shell command, run with sh -c semantics"),
        "creates": Option((str,), help="skip when this path exists"),
        "unless": Option((str,), help="skip when this command exits 0 (a read-only check)"),
        "chdir": Option((str,), help="working directory"),
    }

    def setup(self) -> None:
        try:
            for key in ("cmd", "unless"):
                if self.args.get(key) is not None:
                    names.text(self.args[key], f"command: {key}")
            for key in ("creates", "chdir"):  # relative: to the login's home (or chdir)
                if self.args.get(key) is not None:
                    names.link_target(self.args[key], f"command: {key}")
        except BadInput as exc:
            raise self.where.error(exc.message) from None

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

    def _in_dir(self, command: Sh) -> Sh:
        chdir = self.args.get("chdir")
        return lines(sh(Sh("cd --"), chdir, Sh("|| exit 1")), command) if chdir else command

    def probe_script(self) -> Sh:
        parts = []
        if self.args.get("creates"):
            parts.append(sh(Sh("if [ -e"), self.args["creates"], Sh("]; then zv creates yes; fi")))
        if self.args.get("unless"):
            check = self._in_dir(operator_shell(self.args["unless"]))
            parts.append(lines(Sh("if ("), check, Sh(") >/dev/null 2>&1 </dev/null; then zv unless ok; fi")))
        return lines(*parts)

    def decide(self, observed: Observed) -> Decision:
        if observed.get("creates") == "yes":
            return NoChange(f"{self.args['creates']} exists")
        if observed.get("unless") == "ok":
            return NoChange("`unless` check succeeded")
        return Change(f"run: {self.target()}", self._in_dir(operator_shell(self.args["cmd"])))

    def verify(self, observed: Observed, apply_output: str) -> str | None:
        if self.args.get("creates") and observed.get("creates") != "yes":
            return f"the command ran but {self.args['creates']} still does not exist"
        return None
