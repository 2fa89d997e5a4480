"""Sweep history in SQLite: each finding knows since when it has been in its current severity."""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Sequence
from pathlib import Path

from zetactl.health.checks import HostHealth, Severity
from zetactl.paths import state_dir

SCHEMA = """
CREATE TABLE IF NOT EXISTS findings (
  sweep REAL NOT NULL, host TEXT NOT NULL, check_name TEXT NOT NULL,
  severity INTEGER NOT NULL, message TEXT NOT NULL, since REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS findings_host ON findings (host, check_name, sweep);
CREATE INDEX IF NOT EXISTS findings_sweep ON findings (sweep);
"""


def database(path: Path | None = None) -> sqlite3.Connection:
    db_path = path or state_dir() / "health.sqlite"
    db_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    if not db_path.exists():  # sqlite makes it with the umask's mode: private from the start
        os.close(os.open(db_path, os.O_WRONLY | os.O_CREAT, 0o600))
    conn = sqlite3.connect(db_path, timeout=10)
    conn.executescript(SCHEMA)
    return conn


def record(conn: sqlite3.Connection, results: Sequence[HostHealth], *, keep_days: float = 30,
           now: float | None = None) -> dict[tuple[str, str], float]:
    """Store this sweep; returns (host, check) -> since (start of the current severity streak)."""
    now = now or time.time()
    # each (host, check)'s own latest row: a partial sweep (--limit, an unreachable host) resets nothing
    previous = {(h, c): (s, since) for h, c, s, since in conn.execute(
        "SELECT f.host, f.check_name, f.severity, f.since FROM findings f JOIN (SELECT host, check_name, "
        "MAX(sweep) AS sweep FROM findings GROUP BY host, check_name) m ON f.host = m.host "
        "AND f.check_name = m.check_name AND f.sweep = m.sweep")}
    since_of: dict[tuple[str, str], float] = {}
    rows = []
    for health in results:
        for finding in health.findings:
            key = (health.host, finding.check)
            before = previous.get(key)
            since = before[1] if before and before[0] == int(finding.severity) else now
            since_of[key] = since
            rows.append((now, health.host, finding.check, int(finding.severity), finding.message, since))
    with conn:
        conn.executemany("INSERT INTO findings VALUES (?, ?, ?, ?, ?, ?)", rows)
        conn.execute("DELETE FROM findings WHERE sweep < ?", (now - keep_days * 86400,))
    return since_of


def host_history(conn: sqlite3.Connection, host: str, limit: int = 50) -> list[tuple[float, str, str, str, float]]:
    """The host's non-OK findings, newest first: (sweep time, check, severity, message, since)."""
    return [(sweep, check, Severity(severity).name, message, since) for sweep, check, severity, message, since in
            conn.execute("SELECT sweep, check_name, severity, message, since FROM findings WHERE host = ? "
                         "AND severity > 0 ORDER BY sweep DESC, check_name LIMIT ?", (host, limit))]
