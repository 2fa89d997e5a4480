"""The run journal: every state transition of every step, appended to a local JSON-lines file.

runs/<run_id>/meta.json     what was run (playbook, inventory, selection): the inputs of --resume
runs/<run_id>/journal.jsonl one event per line, appended in whole lines (a write(2) per round trip
                            of the engine), so a killed controller leaves at most one torn last
                            line (skipped when read back)
runs/<run_id>/result.json   the final map host -> outcome, written when the run ends

Events carry names, states and summaries, never file content or secrets.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zetactl.errors import BadInput
from zetactl.fileio import write_atomic
from zetactl.paths import state_dir
from zetactl.remote import names

# one encoder for every event (json.dumps with options builds a new one per call)
_encode = json.JSONEncoder(separators=(",", ":")).encode


def runs_dir() -> Path:
    return state_dir() / "runs"


def new_run_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(2)


class Journal:
    """Events are buffered and written together by `flush`: the engine flushes before every remote script
    it sends, so what a host did is on file before anything more is done to it, at one write(2) per
    round trip instead of one per event; `sync` (a finished host) and `close` also fsync."""

    FLUSH_AT = 256  # events: a bound on the buffer between two round trips

    def __init__(self, run_dir: Path) -> None:
        self.dir = run_dir
        run_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._fd = os.open(run_dir / "journal.jsonl", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        self._buffer: list[str] = []

    def append(self, event: dict[str, Any]) -> None:
        event = {"t": round(time.time(), 3), **event}
        self._buffer.append(_encode(event) + "\n")
        if len(self._buffer) >= self.FLUSH_AT:
            self.flush()

    def flush(self) -> None:
        if self._buffer and self._fd >= 0:
            data = "".join(self._buffer).encode()
            self._buffer.clear()
            while data:  # a regular file takes it whole; a short write is finished, never dropped
                data = data[os.write(self._fd, data):]

    def sync(self) -> None:
        self.flush()
        os.fsync(self._fd)

    def close(self) -> None:
        if self._fd >= 0:
            self.flush()
            os.fsync(self._fd)
            os.close(self._fd)
            self._fd = -1


@dataclass(frozen=True)
class RunRecord:
    run_id: str
    dir: Path
    meta: dict[str, Any]

    def events(self) -> Iterator[dict[str, Any]]:
        path = self.dir / "journal.jsonl"
        if not path.exists():
            return
        with path.open() as handle:
            for line in handle:
                try:
                    yield json.loads(line)
                except json.JSONDecodeError:
                    continue  # a torn last line from a killed controller

    def result(self) -> dict[str, Any] | None:
        path = self.dir / "result.json"
        return json.loads(path.read_text()) if path.exists() else None


def create_run(meta: dict[str, Any]) -> tuple[RunRecord, Journal]:
    run_id = new_run_id()
    run_dir = runs_dir() / run_id
    run_dir.mkdir(parents=True, exist_ok=False, mode=0o700)
    write_json(run_dir / "meta.json", {"run_id": run_id, **meta})
    return RunRecord(run_id, run_dir, meta), Journal(run_dir)


RUN_ID = re.compile(r"[0-9]{8}-[0-9]{6}-[0-9a-f]{4}")


def load_run(run_id: str) -> RunRecord:
    run_dir = runs_dir() / run_id
    if not RUN_ID.fullmatch(run_id) or not (run_dir / "meta.json").is_file():
        raise BadInput(f"no run {names.show(run_id)} in {runs_dir()} (see `zetactl runs list`)")
    return RunRecord(run_id, run_dir, json.loads((run_dir / "meta.json").read_text()))


def list_runs() -> list[RunRecord]:
    base = runs_dir()
    if not base.is_dir():
        return []
    return [load_run(p.name) for p in sorted(base.iterdir()) if (p / "meta.json").is_file()]


def write_json(path: Path, data: Any, *, compact: bool = False) -> None:
    """`compact` for the large machine-read files (json's C encoder does not indent: 5x faster)."""
    write_atomic(path, json.dumps(data, separators=(",", ":")) + "\n" if compact else json.dumps(data, indent=1) + "\n")
