"""Remote scripts the engine sends: batched probes, batched apply+verify, and the host lock.

Every script goes to `sh` on stdin (never on the command line), and its output is framed with the
ASCII record separator so many steps share one round trip.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from dataclasses import dataclass, field

from zetactl.steps import Change, Step
from zetactl.steps.probes import PRELUDE

RS = "\x1e"
STATE_DIR = "/var/lib/zeta/state"
LOCK_FILE = f"{STATE_DIR}/lock"
MARKER = f"{STATE_DIR}/last-run"
LOCK_BUSY = 75


def probe_script(items: Sequence[tuple[int, Step]]) -> str:
    return "\n".join([PRELUDE, *(_probe_fragment(key, step) for key, step in items)]) + "\n"


def _probe_fragment(key: int, step: Step) -> str:
    # a brace group, not a subshell: probes only read, and a fork per step adds up on a fleet
    return f"printf '\\036P {key}\\n'\n{{ {step.probe_script()}\n}} </dev/null 2>/dev/null"


def parse_probe(stdout: str) -> dict[int, dict[str, str]]:
    result: dict[int, dict[str, str]] = {}
    for record in stdout.split(RS)[1:]:
        header, _, body = record.partition("\n")
        tag, _, key = header.partition(" ")
        if tag != "P":
            continue
        observed: dict[str, str] = {}
        for line in body.splitlines():
            # `key value` lines from the probe helpers, or `Key=Value` lines (systemctl show)
            equals, space = line.find("="), line.find(" ")
            name, _, value = line.partition("=" if equals > 0 and (space < 0 or equals < space) else " ")
            if name and name not in observed:
                observed[name] = value
        result[int(key)] = observed
    return result


@dataclass
class ApplyResult:
    rc: int | None = None  # None: not reached (an earlier change in the batch failed)
    output: str = ""
    observed: dict[str, str] = field(default_factory=dict)


def apply_script(batch: Sequence[tuple[int, Step, Change]], reprobe: Sequence[tuple[int, Step]] = ()) -> str:
    """Apply each change in order, stop at the first failure, re-probe each applied step (verify).

    When every change succeeded, the steps in `reprobe` are probed too (their `P` records).
    """
    parts = [PRELUDE]
    for key, step, change in batch:
        parts.append(
            f"printf '\\036A {key}\\n'\n( set -e\n{change.script}\n) </dev/null 2>&1\nzr=$?\n"
            f"printf '\\n\\036R {key} %d\\n' \"$zr\"\n[ \"$zr\" -eq 0 ] || exit 0\n"
            f"printf '\\036V {key}\\n'\n{{ {step.probe_script()}\n}} </dev/null 2>/dev/null"
        )
    parts.extend(_probe_fragment(key, step) for key, step in reprobe)
    return "\n".join(parts) + "\n"


def parse_apply(stdout: str) -> dict[int, ApplyResult]:
    results: dict[int, ApplyResult] = {}
    for record in stdout.split(RS)[1:]:
        header, _, body = record.partition("\n")
        fields = header.split()
        if len(fields) < 2:
            continue
        tag, key = fields[0], int(fields[1])
        if tag not in ("A", "R", "V"):
            continue  # P records: probes that ran after the batch (parse_probe reads them)
        result = results.setdefault(key, ApplyResult())
        if tag == "A":
            result.output = body.rstrip("\n")
        elif tag == "R" and len(fields) == 3:
            result.rc = int(fields[2])
        elif tag == "V":
            result.observed = parse_probe(f"{RS}P {key}\n{body}")[key]
    return results


def lock_command(wait: float, owner: str) -> str:
    """Hold the host lock for as long as this channel's stdin is open, and run the run's scripts on it.

    flock is released by the kernel when the process ends, so a controller that dies (even by
    SIGKILL) never leaves a stale lock. Under the lock, a loop reads framed scripts from stdin (a line
    with the size in bytes, then the script), runs each in a subshell (stdin /dev/null), and answers with
    its stdout, its stderr after a `\\036ERR` line when there is any, and `\\036END <exit status>`. One
    session serves every probe and apply of the run: a new SSH session per round trip costs the node a
    fork of sshd and two shells (about 10 ms of CPU each). A size of 0 ends the scripts; then comes the
    marker text ending in a line `end`; a cut connection leaves the old marker in place.
    """
    tmp = f"{STATE_DIR}/.last-run.tmp"
    inner = (
        f"printf '%s\\n' {shlex.quote(owner)} > {STATE_DIR}/lock.owner; echo locked; ze={STATE_DIR}/.session.err.$$; "
        "while IFS= read -r zn && [ \"$zn\" != 0 ]; do "
        "zs=$(head -c \"$zn\"); ( eval \"$zs\" ) </dev/null 2>\"$ze\"; zr=$?; "
        "if [ -s \"$ze\" ]; then printf '\\036ERR\\n'; cat \"$ze\"; fi; printf '\\036END %d\\n' \"$zr\"; done; "
        "rm -f \"$ze\"; "
        f"cat > {tmp}; zl=; while IFS= read -r zx; do zl=$zx; done < {tmp}; "
        f"if [ \"$zl\" = end ]; then mv -f {tmp} {MARKER}; else rm -f {tmp}; fi"
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
    """The script as the lock channel reads it: its size in bytes on one line, then the script."""
    return f"{len(script.encode())}\n{script}"
