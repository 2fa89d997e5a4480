"""What a step kind is: declared options, a probe, a pure decision, an apply fragment, a verify.

A step runs on the node as POSIX sh fragments (NixOS has no Python by default). The engine batches
the fragments of many steps into one remote script; a step never talks to the connection itself.

    probe_path()        the one path whose attributes (and sha256) the engine reads with every other step's
    probe_script()      Sh writing the fields it reads beyond that: `zv NAME VALUE` (a record the node cannot forge)
    decide(observed)    pure: NoChange("because ...") or Change(summary, apply script (Sh), diff)
    verify(observed)    after apply, re-probed (probe_path + verify_script): None when the desired state holds

Every value in a script goes through zetactl.remote's builder (sh(), cat(), script()): quoted by construction.
"""

from __future__ import annotations

import base64
import secrets
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

from zetactl.errors import BadInput
from zetactl.remote import EMPTY, Answer, Sh, cat, lines, sh, shown

Observed = Mapping[str, str]


@dataclass(frozen=True)
class Option:
    types: tuple[type, ...]
    required: bool = False
    default: Any = None
    choices: tuple[str, ...] = ()
    help: str = ""


@dataclass(frozen=True)
class NoChange:
    reason: str


@dataclass(frozen=True)
class Change:
    summary: str
    script: Sh = field(repr=False)  # may carry file content: never logged
    diff: str | None = field(default=None, repr=False)


Decision = NoChange | Change


@dataclass(frozen=True)
class Where:
    file: str
    line: int

    def error(self, message: str) -> BadInput:
        return BadInput(message, file=self.file, line=self.line)


class Step(ABC):
    """One rendered step for one host. Subclasses declare `kind` and `options`."""

    kind: ClassVar[str]
    options: ClassVar[Mapping[str, Option]]
    barrier: ClassVar[bool] = False  # its apply may change anything: later probes are stale

    # Options naming a controller-side file the renderer reads (or renders) into `payload`.
    payload_option: ClassVar[str | None] = None
    payload_is_template: ClassVar[bool] = False

    def __init__(self, args: Mapping[str, Any], where: Where, *, want_content: bool = False,
                 payload: bytes | None = None, host: str = "") -> None:
        self.where = where
        self.host = host  # the inventory host this step was rendered for
        self.want_content = want_content  # --diff: probe old content so the diff can be shown
        self.payload = payload
        self.args = validate_args(self.kind, self.options, args, where)
        self.setup()

    @classmethod
    def precheck(cls, args: Mapping[str, Any], where: Where) -> None:
        """Checks on the rendered options needed before the renderer reads a payload file."""
        return None

    @classmethod
    def validate_all(cls, steps: Sequence[tuple[str, Step]]) -> str | None:
        """Check every rendered step of this kind in the plan at once (host, step); raise BadInput.

        Returns a note when the check could not be made (a tool is missing), else None.
        """
        return None

    def setup(self) -> None:
        """Check combinations of options once they are rendered; raise self.where.error()."""
        return None

    def target(self) -> str:
        """What the step manages, for reports (a path, a unit, a command)."""
        return str(self.args.get("path", ""))

    def touches(self) -> tuple[str, ...]:
        """Remote paths the apply changes: a later step probing an overlapping path is re-probed."""
        return (self.target(),)

    def touches_below(self) -> bool:
        """Whether the apply may change what is beneath the paths it touches (False: only those paths and
        their ancestors, as `mkdir -p` and a chmod of a directory do)."""
        return True

    def extra_time(self) -> float:
        """Seconds this step may need beyond the host's --timeout (a NixOS switch and its confirmation)."""
        return 0.0

    def reads(self) -> tuple[str, ...]:
        """Remote paths the step's decision depends on: an earlier change there makes its probe stale."""
        return self.touches()

    def probe_path(self) -> tuple[str, bool] | None:
        """The one path whose attributes (type, mode, owner, group, size, link target) the probe reads, and
        whether its sha256 too. The engine reads these for every step of a script in one `stat` and one
        `sha256sum` (zp_stats, zp_shas in remote/scripts/prelude.sh), then adds what `probe_script` writes."""
        return None

    @abstractmethod
    def probe_script(self) -> Sh:
        """Sh writing `zv NAME VALUE` fields, beyond what `probe_path` reads (EMPTY when nothing more)."""

    def verify_script(self) -> Sh:
        """sh run right after the apply, printing what `verify` needs beyond `probe_path` (default: the probe's)."""
        return self.probe_script()

    @abstractmethod
    def decide(self, observed: Observed) -> Decision: ...

    def verify(self, observed: Observed, apply_output: str) -> str | None:
        """None when the desired state holds after apply; else what is still wrong."""
        decision = self.decide(observed)
        return None if isinstance(decision, NoChange) else f"still differs after apply: {decision.summary}"


def validate_args(kind: str, options: Mapping[str, Option], args: Mapping[str, Any], where: Where) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key in args:
        if key not in options:
            known = ", ".join(sorted(options))
            raise where.error(f"{kind}: unknown option {key!r} (known: {known})")
    for key, option in options.items():
        if key not in args or args[key] is None:
            if option.required:
                raise where.error(f"{kind}: missing required option {key!r}")
            result[key] = option.default
            continue
        value = args[key]
        if not isinstance(value, option.types) or (isinstance(value, bool) and bool not in option.types):
            names = " or ".join(t.__name__ for t in option.types)
            raise where.error(f"{kind}: option {key!r} must be {names}, not {type(value).__name__}")
        if option.choices and value not in option.choices:
            raise where.error(f"{kind}: option {key!r} must be one of {', '.join(option.choices)}, not {value!r}")
        result[key] = value
    return result


# -- helpers shared by step kinds ------------------------------------------------------------

def normalize_mode(value: Any, where: Where, kind: str) -> str | None:
    """Accept "0644", "644", 0o644 (YAML 0644) and return the 4-digit octal string."""
    if value is None:
        return None
    if isinstance(value, int) and not 0 <= value <= 0o7777:
        raise where.error(f"{kind}: mode must be octal like '0644', not a number that large")
    text = format(value, "o") if isinstance(value, int) else str(value).strip()
    if not text or len(text) > 4 or any(c not in "01234567" for c in text):
        raise where.error(f"{kind}: mode must be octal like '0644', not {shown(str(value)[:20], line=True)!r}")
    return text.rjust(4, "0")


def observed_mode(observed: Observed) -> str:
    return observed.get("mode", "").rjust(4, "0")


def attributes_drift(observed: Observed, mode: str | None, owner: str | None, group: str | None) -> list[str]:
    changes = []
    if mode is not None and observed_mode(observed) != mode:
        changes.append(f"mode {observed_mode(observed)} -> {mode}")
    if owner is not None and observed.get("owner") != owner:
        changes.append(f"owner {shown(observed.get('owner', ''), line=True)} -> {owner}")
    if group is not None and observed.get("group") != group:
        changes.append(f"group {shown(observed.get('group', ''), line=True)} -> {group}")
    return changes


def _owner_group(owner: str | None, group: str | None) -> str:
    return (owner or "") + (":" + group if group else "")


def attributes_script(path: str, mode: str | None, owner: str | None, group: str | None) -> Sh:
    return lines(
        sh(Sh("chown -h --"), _owner_group(owner, group), path) if owner is not None or group is not None else EMPTY,
        sh(Sh("chmod --"), mode, path) if mode is not None else EMPTY)


def write_file_script(path: str, content: bytes, mode: str | None, owner: str | None, group: str | None,
                      *, exists: bool = True) -> Sh:
    """Write content to a temp file in the same directory, set attributes, then rename into place.

    A reader never sees a half-written file: on any failure (a full disk) the temp file is removed
    and the old file stays as it was; the new content is on disk (fsync) before it replaces an existing
    file. `exists=False` (the probe saw no file): no old file to keep attributes from or to protect.

    Every process counts on a fleet (a fork and exec costs a node about a millisecond): paths are known
    here (no dirname/basename), text is written by the shell's printf (no base64), and a mode without
    execute or special bits comes from the umask the file is created with (no chmod).
    """
    parent, _, name = path.rpartition("/")
    by_umask = mode is not None and int(mode, 8) & 0o7111 == 0
    umask = f"{0o777 & ~int(mode, 8):03o}" if mode is not None and by_umask else (
        "022" if mode is None and not exists else "077")
    temp = Sh('"$zt"')
    parts = [
        cat(Sh("zt="), temp_name(parent, name)),
        Sh("trap 'rm -f \"$zt\"' EXIT"),
        sh(Sh("umask"), umask),
        Sh("set -C"),  # the temp file is made, never opened: O_EXCL (a link planted at its name is refused)
        _content_script(content),
        Sh("set +C"),
    ]
    if exists:
        parts.append(Sh('sync -d "$zt" 2>/dev/null || true'))
        keep = ([] if mode is not None else [sh(cat(Sh("chmod --reference="), path), temp)]) + (
            [] if owner is not None and group is not None else [sh(cat(Sh("chown --reference="), path), temp)])
        if keep:  # what is not given comes from the old file
            fallback = [Sh('else chmod 0644 "$zt";')] if mode is None else []
            parts.append(sh(Sh("if [ -e"), path, Sh("]; then"), *[k + Sh(";") for k in keep], *fallback, Sh("fi")))
    if owner is not None or group is not None:
        parts.append(sh(Sh("chown -h --"), _owner_group(owner, group), temp))
    if mode is not None and not by_umask:
        parts.append(sh(Sh("chmod --"), mode, temp))
    parts.append(sh(Sh("mv -f --"), temp, path))
    parts.append(Sh("trap - EXIT"))
    return lines(*parts)


PRINTF_LIMIT = 256 * 1024


def temp_name(parent: str, name: str) -> str:
    """A temp file's path next to `name`: its random part comes from the controller, inside the script on stdin,
    so nobody on the node can know it beforehand (`$$` is in `ps`) and plant a link there."""
    return f"{parent}/.{name}.zeta-{secrets.token_hex(6)}"


def _content_script(content: bytes) -> Sh:
    """Write `content` to "$zt": printf (a shell builtin) for UTF-8 text without NUL, else base64 -d."""
    if len(content) <= PRINTF_LIMIT and b"\0" not in content:
        try:
            return sh(Sh("printf '%s'"), content.decode("utf-8"), Sh('> "$zt"'))
        except UnicodeDecodeError:
            pass
    encoded = base64.b64encode(content).decode()
    return lines(cat(Sh("zd="), encoded), Sh('printf \'%s\\n\' "$zd" | base64 -d > "$zt"'))


# -- action steps: a change that is a conversation with the node, not one script -------------

class ActionContext(Protocol):
    """What the engine lends an action step: its host's connection, fresh connections, the journal."""

    host: str
    run_id: str

    async def run(self, script: Sh, timeout: float) -> Answer:
        """Run `script` over the run's connection (its lock session); raises Unreachable when it is gone."""
        ...

    async def run_fresh(self, script: Sh, timeout: float) -> Answer:
        """Open a NEW connection (host key checked), run `script`, close; raises Unreachable."""
        ...

    def note(self, event: str, **fields: Any) -> None:
        """Append a progress event to the run journal (never a secret)."""
        ...


@dataclass
class ActionResult:
    ok: bool
    summary: str
    status: str = ""  # a host status more precise than failed/changed: rolled-back, failed-units, ...
    error: str = ""
    timings: dict[str, float] = field(default_factory=dict)


class ActionStep(Step):
    """A step whose change is carried out by `execute`, a conversation with the node.

    The engine flushes pending changes before it, calls `execute` instead of running
    `Change.script`, and re-probes the steps after it (it is a barrier).
    """

    barrier: ClassVar[bool] = True

    @abstractmethod
    async def execute(self, change: Change, ctx: ActionContext) -> ActionResult: ...
