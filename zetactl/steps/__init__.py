"""Step kinds. A new kind is one module with one Step subclass, registered here."""

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
    Where,
)
from zetactl.steps.command import Command
from zetactl.steps.credential import Credential
from zetactl.steps.files import Directory, File, LineInFile, Symlink, Template
from zetactl.steps.nixos import NixosModule, NixosRebuild
from zetactl.steps.systemd import Systemd

KINDS: dict[str, type[Step]] = {
    cls.kind: cls
    for cls in (Directory, File, Template, LineInFile, Symlink, Command, Systemd, NixosModule, NixosRebuild, Credential)
}
ALIASES = {"lineinfile": "line_in_file"}

__all__ = [
    "ALIASES",
    "KINDS",
    "ActionContext",
    "ActionResult",
    "ActionStep",
    "Change",
    "Decision",
    "NoChange",
    "Observed",
    "Option",
    "Step",
    "Where",
]
