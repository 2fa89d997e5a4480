"""The scripts the engine sends for a host's steps (batched probes, batched apply+verify) and what they answer.

Each script runs through the one runner (zetactl.remote) and answers records (remote/frame.py), by tag:

    PS, PH            every probed path's attributes (one `stat`) and sha256 (one `sha256sum`); WS, WH after an apply
    P<key>            step <key> was probed; P<key>.<name> the fields its own probe part wrote (`zv NAME VALUE`)
    A<key>, R<key>    step <key>'s change: its output (stdout and stderr) and its exit status
    V<key>.<name>     what its verify part read right after its change
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from zetactl.remote import Records, Sh, cat, lines, sh
from zetactl.remote.frame import BadAnswer, number, sha_lines, stat_entries
from zetactl.steps import Change, Step


def probe_script(items: Sequence[tuple[int, Step]]) -> Sh:
    return lines(*probe_block(items, "P"), Sh(":"))


def _path_block(items: Sequence[tuple[int, Step]], tag: str) -> list[Sh]:
    """One `stat` for every path of `items` (record `<tag>S`), one `sha256sum` (record `<tag>H`)."""
    stats, shas = _paths(items)
    block = []
    if stats:
        block.append(sh(Sh("zp_stats"), tag + "S", *stats))
    if shas:
        block.append(sh(Sh("zp_shas"), tag + "H", *shas))
    return block


def _paths(items: Sequence[tuple[int, Step]]) -> tuple[list[str], list[str]]:
    stats: dict[str, None] = {}
    shas: dict[str, None] = {}
    for _, step in items:
        wanted = step.probe_path()
        if wanted is not None:
            stats[wanted[0]] = None
            if wanted[1]:
                shas[wanted[0]] = None
    return list(stats), list(shas)


def _part(tag: str, script: Sh) -> Sh:
    """A step's part of a script: its record `tag` says it was reached; its fields go under `tag.` (zk)."""
    head = lines(cat(Sh("zk="), tag), sh(Sh("zf"), tag, ""))
    # a brace group, not a subshell: probes only read, and a fork per step adds up on a fleet
    return lines(head, Sh("{"), script, Sh("} </dev/null 2>/dev/null")) if script else head


def probe_block(items: Sequence[tuple[int, Step]], tag: str) -> list[Sh]:
    """Probe `items`: their paths together (`_path_block`), then each step's own part (record `<tag><key>`, also for
    a step without one: it says the step was probed)."""
    return [*_path_block(items, tag), *(_part(f"{tag}{key}", step.probe_script()) for key, step in items)]


def needs_probe(step: Step) -> bool:
    """Whether the step's decision needs anything read from the node (a bare command needs nothing)."""
    return step.probe_path() is not None or bool(step.probe_script())


def _path_facts(records: Records, tag: str, items: Sequence[tuple[int, Step]]) -> dict[int, dict[str, str]]:
    stats, shas = _paths(items)
    if f"{tag}S" not in records:
        return {}
    found = stat_entries(records[f"{tag}S"], stats)
    hashes = sha_lines(records.get(f"{tag}H", b""), shas)
    result: dict[int, dict[str, str]] = {}
    for key, step in items:
        wanted = step.probe_path()
        if wanted is None:
            continue
        path, sha = wanted
        entry = found.get(path)
        facts = {"type": "absent"} if entry is None else {
            "type": entry.type, "mode": entry.mode, "owner": entry.owner, "group": entry.group, "size": entry.size}
        if entry is not None and entry.target is not None:
            facts["target"] = entry.target
        if sha and facts["type"] == "file" and path in hashes:
            facts["sha256"] = hashes[path]
        result[key] = facts
    return result


def _observed(records: Records, tag: str, facts: Mapping[str, str]) -> dict[str, str]:
    """A step's own fields and its path's facts (which its own fields never override)."""
    return {**records.under(tag), **facts}


def parse_probe(records: Records, items: Sequence[tuple[int, Step]], tag: str = "P") -> dict[int, dict[str, str]]:
    """What a probe block (`probe_block(items, tag)`) observed, per step that was probed."""
    facts = _path_facts(records, tag, items)
    return {key: _observed(records, f"{tag}{key}", facts.get(key, {})) for key, _ in items
            if f"{tag}{key}" in records}


@dataclass
class ApplyResult:
    rc: int | None = None  # None: not reached (an earlier change in the batch failed)
    output: str = ""
    observed: dict[str, str] = field(default_factory=dict)


def apply_script(batch: Sequence[tuple[int, Step, Change]], reprobe: Sequence[tuple[int, Step]] = ()) -> Sh:
    """Apply each change in order, stop at the first failure, re-probe each applied step (verify).

    A step's own verify part runs right after its change (fields `V<key>.*`); the paths of the steps are read
    together once their changes are made (records `WS`, `WH`), before the change of a barrier (a command may
    change anything; it is always the last of a batch), whose verify reads its path itself. When every change
    succeeded, the steps in `reprobe` are probed too (their `P` records).
    """
    plain = [item for item in batch if not item[1].barrier]
    barriers = [item for item in batch if item[1].barrier]
    return lines(
        Sh("zr=0"), Sh("za() {"),
        *(_apply_part(key, step, change, Sh("return 0")) for key, step, change in plain),
        Sh(":"), Sh("}"), Sh("za"),
        *_path_block([(k, s) for k, s, _ in plain], "W"),
        Sh('[ "$zr" -eq 0 ] || exit 0'),
        *(_apply_part(key, step, change, Sh("exit 0"), own_path=True) for key, step, change in barriers),
        *probe_block(reprobe, "P"), Sh(":"))


def _apply_part(key: int, step: Step, change: Change, stop: Sh, *, own_path: bool = False) -> Sh:
    """The change in a subshell (set -e) whose output is one record; its status another; then its verify part
    (for a barrier, its path is read there too: the batch's path block ran before it)."""
    verify = step.verify_script()
    wanted = step.probe_path()
    if own_path and wanted is not None:
        verify = lines(*_path_block([(key, step)], f"V{key}_"), verify)
    return lines(
        Sh("zo=$({ set -e"), change.script, Sh("} </dev/null 2>&1)"),
        Sh("zr=$?"),
        sh(Sh("zf"), f"A{key}", Sh('"$zo"')),
        sh(Sh("zf"), f"R{key}", Sh('"$zr"')),
        sh(Sh('[ "$zr" -eq 0 ] ||'), stop),
        _part(f"V{key}", verify))


def parse_apply(records: Records, batch: Sequence[tuple[int, Step, Change]]) -> dict[int, ApplyResult]:
    facts = _path_facts(records, "W", [(k, s) for k, s, _ in batch if not s.barrier])
    results: dict[int, ApplyResult] = {}
    for key, step, _ in batch:
        if f"A{key}" not in records:
            continue
        rc = number(records.text(f"R{key}"))
        if rc is None:
            raise BadAnswer(f"step {key}: its exit status is not a number")
        result = results[key] = ApplyResult(rc, records.text(f"A{key}").rstrip("\n"))
        if result.rc == 0 and f"V{key}" in records:
            own = _path_facts(records, f"V{key}_", [(key, step)]) if step.barrier else facts
            result.observed = _observed(records, f"V{key}", own.get(key, {}))
    return results
