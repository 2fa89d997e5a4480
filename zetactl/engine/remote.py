"""Remote scripts the engine sends: batched probes, batched apply+verify, and the host lock.

Every script goes to `sh` on stdin (never on the command line), and its output is framed with the
ASCII record separator so many steps share one round trip.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from zetactl.steps import Change, Step
from zetactl.steps.probes import PRELUDE
from zetactl.transport.ssh import WHOLE_OR_NOTHING, whole

RS = "\x1e"
STATE_DIR = "/var/lib/zeta/state"
LOCK_FILE = f"{STATE_DIR}/lock"
MARKER = f"{STATE_DIR}/last-run"
LOCK_BUSY = 75


def probe_script(items: Sequence[tuple[int, Step]]) -> str:
    return "\n".join([PRELUDE, *probe_block(items, "P"), ":"]) + "\n"


def batchable(path: str) -> bool:
    """Whether `zp_stats`/`zp_shas` can carry the path (their output is split on control characters, and
    sha256sum escapes a name with a backslash)."""
    return _UNBATCHABLE.search(path) is None


_UNBATCHABLE = re.compile(r"[\x00-\x1f\x7f\\]")


def _batched(step: Step) -> tuple[str, bool] | None:
    wanted = step.probe_path()
    return wanted if wanted is not None and batchable(wanted[0]) else None


def _own_fragment(step: Step, *, inline_path: bool = False, verify: bool = False) -> str:
    """The step's probe (or verify) fragment, with the one-path helpers for a path the batch does not read."""
    own = step.verify_script() if verify else step.probe_script()
    wanted = step.probe_path()
    if wanted is None or (batchable(wanted[0]) and not inline_path):
        return own
    path = shlex.quote(wanted[0])
    return "\n".join(filter(None, [f"zp_stat {path}", f"zp_sha {path}" if wanted[1] else "", own]))


def _path_block(items: Sequence[tuple[int, Step]], tag: str) -> list[str]:
    """One `stat` for every batchable path of `items` (record `<tag>S`), one `sha256sum` (record `<tag>H`)."""
    stats: dict[str, None] = {}
    shas: dict[str, None] = {}
    for _, step in items:
        wanted = _batched(step)
        if wanted is not None:
            stats[wanted[0]] = None
            if wanted[1]:
                shas[wanted[0]] = None
    block = []
    if stats:
        block.append(f"printf '\\036{tag}S\\n'; zp_stats {' '.join(shlex.quote(p) for p in stats)}")
    if shas:
        block.append(f"printf '\\036{tag}H\\n'; zp_shas {' '.join(shlex.quote(p) for p in shas)}")
    return block


def _fragment(tag: str, key: int, script: str) -> str:
    header = f"printf '\\036{tag} {key}\\n'"
    # a brace group, not a subshell: probes only read, and a fork per step adds up on a fleet
    return f"{header}\n{{ {script}\n}} </dev/null 2>/dev/null" if script.strip() else header


def probe_block(items: Sequence[tuple[int, Step]], tag: str) -> list[str]:
    """Probe `items`: their paths together (`_path_block`), then each step's own fragment (record `<tag> KEY`,
    also for a step without one: it says the step was probed)."""
    return [*_path_block(items, tag), *(_fragment(tag, key, _own_fragment(step)) for key, step in items)]


def needs_probe(step: Step) -> bool:
    """Whether the step's decision needs anything read from the node (a bare command needs nothing)."""
    return step.probe_path() is not None or bool(step.probe_script().strip())


TYPES = {"regular file": "file", "regular empty file": "file", "directory": "directory", "symbolic link": "link"}


def _records(stdout: str) -> dict[str, str]:
    records: dict[str, str] = {}
    for record in stdout.split(RS)[1:]:
        header, _, body = record.partition("\n")
        records.setdefault(header, body)
    return records


def _path_facts(records: Mapping[str, str], tag: str, items: Sequence[tuple[int, Step]]
                ) -> dict[int, dict[str, str]]:
    stats: dict[str, dict[str, str]] = {}
    for entry in records.get(f"{tag}S", "").split("\x1d"):
        fields = entry.split("\x1f")
        if len(fields) != 7:
            continue
        name, kind, mode, owner, group, size, quoted = fields
        facts = {"type": TYPES.get(kind, "other"), "mode": mode, "owner": owner, "group": group, "size": size}
        if facts["type"] == "link":
            facts["target"] = quoted[len(name) + 4:] if quoted.startswith(name + " -> ") else ""
        stats[name] = facts
    shas = {line[66:]: line[:64] for line in records.get(f"{tag}H", "").splitlines()
            if len(line) > 66 and line[64:66] == "  "}
    result: dict[int, dict[str, str]] = {}
    for key, step in items:
        wanted = _batched(step)
        if wanted is None:
            continue
        path, sha = wanted
        facts = dict(stats.get(path, {"type": "absent"}))
        if sha and facts["type"] == "file" and path in shas:
            facts["sha256"] = shas[path]
        result[key] = facts
    return result


def _lines(body: str, observed: dict[str, str]) -> dict[str, str]:
    for line in body.splitlines():
        # `key value` lines from the probe helpers, or `Key=Value` lines (systemctl show)
        equals, space = line.find("="), line.find(" ")
        name, _, value = line.partition("=" if equals > 0 and (space < 0 or equals < space) else " ")
        if name and name not in observed:
            observed[name] = value
    return observed


def parse_probe(stdout: str, items: Sequence[tuple[int, Step]], tag: str = "P") -> dict[int, dict[str, str]]:
    """What a probe block (`probe_block(items, tag)`) observed, per step that was probed."""
    records = _records(stdout)
    facts = _path_facts(records, tag, items)
    return {key: _lines(records[f"{tag} {key}"], facts.get(key, {})) for key, _ in items
            if f"{tag} {key}" in records}


@dataclass
class ApplyResult:
    rc: int | None = None  # None: not reached (an earlier change in the batch failed)
    output: str = ""
    observed: dict[str, str] = field(default_factory=dict)


def apply_script(batch: Sequence[tuple[int, Step, Change]], reprobe: Sequence[tuple[int, Step]] = ()) -> str:
    """Apply each change in order, stop at the first failure, re-probe each applied step (verify).

    A step's own probe fragment runs right after its change (record `V KEY`); the paths of the steps
    are read together once their changes are made (records `WS`, `WH`), before the change of a barrier
    (a command may change anything; it is always the last of a batch), whose verify reads its path
    itself. When every change succeeded, the steps in `reprobe` are probed too (their `P` records).
    """
    plain = [item for item in batch if not item[1].barrier]
    barriers = [item for item in batch if item[1].barrier]
    parts = [PRELUDE, "zr=0", "za() {"]
    parts.extend(_apply_fragment(key, step, change, "return 0") for key, step, change in plain)
    parts += [":", "}", "za", *_path_block([(k, s) for k, s, _ in plain], "W"), "[ \"$zr\" -eq 0 ] || exit 0"]
    parts.extend(_apply_fragment(key, step, change, "exit 0", inline_path=True) for key, step, change in barriers)
    parts.extend([*probe_block(reprobe, "P"), ":"])
    return "\n".join(parts) + "\n"


def _apply_fragment(key: int, step: Step, change: Change, stop: str, *, inline_path: bool = False) -> str:
    return (f"printf '\\036A {key}\\n'\n( set -e\n{change.script}\n) </dev/null 2>&1\nzr=$?\n"
            f"printf '\\n\\036R {key} %d\\n' \"$zr\"\n[ \"$zr\" -eq 0 ] || {stop}\n"
            + _fragment("V", key, _own_fragment(step, inline_path=inline_path, verify=True)))


def parse_apply(stdout: str, batch: Sequence[tuple[int, Step, Change]]) -> dict[int, ApplyResult]:
    records = _records(stdout)
    facts = _path_facts(records, "W", [(k, s) for k, s, _ in batch if not s.barrier])
    results: dict[int, ApplyResult] = {}
    for header, body in records.items():
        fields = header.split()
        if len(fields) < 2 or fields[0] not in ("A", "R") or not fields[1].isdigit():
            continue  # V and W records (read below), P records: probes that ran after the batch
        result = results.setdefault(int(fields[1]), ApplyResult())
        if fields[0] == "A":
            result.output = body.rstrip("\n")
        elif len(fields) == 3:
            result.rc = int(fields[2])
    for key, result in results.items():
        if result.rc == 0 and f"V {key}" in records:
            result.observed = _lines(records[f"V {key}"], facts.get(key, {}))
    return results


def lock_command(wait: float, owner: str) -> str:
    """Hold the host lock for as long as this channel's stdin is open, and run the run's scripts on it.

    flock is released by the kernel when the process ends, so a controller that dies (even by
    SIGKILL) never leaves a stale lock. Under the lock, a loop reads framed scripts from stdin (a line
    with the size in bytes, then the script), runs each in a subshell (stdin /dev/null), and answers with
    its stdout, its stderr after a `\\036ERR` line when there is any, and `\\036END <exit status>`; a
    script that arrived cut short ends the session without running. One
    session serves every probe and apply of the run: a new SSH session per round trip costs the node a
    fork of sshd and two shells (about 10 ms of CPU each). A size of 0 ends the scripts; then comes the
    marker text ending in a line `end`; a cut connection leaves the old marker in place.

    A script's stdout is collected (a command substitution, whose EXIT trap appends `x` so that trailing
    newlines survive) and answered in one write: its records would otherwise leave as one SSH packet per
    `printf`, and every packet costs sshd and the controller more than the shell's work it carries.
    """
    tmp = f"{STATE_DIR}/.last-run.tmp"
    # builtins wherever they do (a fork and exec costs the node about a millisecond): the error file is the
    # lock holder's own (kept, emptied by each script), the marker is read with `read` and renamed into place
    inner = (
        f"printf '%s\\n' {shlex.quote(owner)} > {STATE_DIR}/lock.owner; echo locked; ze={STATE_DIR}/lock.err; "
        "while IFS= read -r zn && [ \"$zn\" != 0 ]; do "
        f"zs=$(head -c \"$zn\"); {WHOLE_OR_NOTHING}; zo=$(trap 'echo x' EXIT; eval \"$zs\" </dev/null 2>\"$ze\"); "
        "zr=$?; zo=${zo%x}; if [ -s \"$ze\" ]; then printf '%s\\036ERR\\n' \"$zo\"; cat \"$ze\"; zo=''; fi; "
        "printf '%s\\036END %d\\n' \"$zo\" \"$zr\"; done; "
        f": > {tmp}; while IFS= read -r zx; do printf '%s\\n' \"$zx\" >> {tmp}; if [ \"$zx\" = end ]; then "
        f"mv -f {tmp} {MARKER}; break; fi; done; if [ -e {tmp} ]; then rm -f {tmp}; fi"
    )
    return (
        f"[ -d {STATE_DIR} ] || mkdir -p {STATE_DIR}; flock -w {wait:g} -E {LOCK_BUSY} {LOCK_FILE} "
        f"sh -c {shlex.quote(inner)} || {{ rc=$?; [ $rc -eq {LOCK_BUSY} ] && cat {STATE_DIR}/lock.owner >&2; "
        "exit $rc; }"
    )


END_OF_SCRIPTS = "0\n"


@dataclass
class Ran:
    """A script's result on the lock session (the fields of asyncssh's completed process the engine reads)."""

    exit_status: int | None
    stdout: str
    stderr: str
    exit_signal: str | None = None


def split_answer(answer: str, status_line: str) -> Ran:
    """`answer` is what came before `\\036END `, `status_line` the rest of that line."""
    stdout, _, stderr = answer.partition(RS + "ERR\n")
    status = status_line.strip()
    return Ran(int(status) if status.isdigit() else None, stdout, stderr)


def framed(script: str) -> str:
    """The script as the lock channel reads it: its size in bytes on one line, then the script and its end
    line (a script cut short by a lost connection is not run: transport.ssh.WHOLE_OR_NOTHING)."""
    text = whole(script)
    return f"{len(text.encode())}\n{text}"
