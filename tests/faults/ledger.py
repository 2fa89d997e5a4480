"""What each fault test tried and saw, for docs/reliability.md (tests/faults/report.py).

A test calls `record(...)` once per fault it injected. The rows go to the JSON-lines file named by
$ZETACTL_FAULT_LEDGER when the report runs the suite; otherwise they are dropped (an ordinary run).
"""

from __future__ import annotations

import json
import os


def record(fault: str, expected: str, observed: str, lost: str = "nothing", runs: int = 1) -> None:
    """One fault: what was injected, what zetactl must do, what it did, what was lost (checked)."""
    path = os.environ.get("ZETACTL_FAULT_LEDGER")
    if not path:
        return
    row = {"fault": fault, "expected": expected, "observed": observed, "lost": lost, "runs": runs}
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(row) + "\n")
