"""Health results for people (a table), programs (JSON) and node_exporter (Prometheus text)."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from typing import Any

from zetactl.health.checks import HostHealth, Severity
from zetactl.tables import tabulate


def worst(results: Sequence[HostHealth]) -> Severity:
    return max((h.worst for h in results), default=Severity.OK)


def table(results: Sequence[HostHealth], since: Mapping[tuple[str, str], float], elapsed: float) -> str:
    rows = []
    now = time.time()
    for health in results:
        problems = [f for f in health.findings if f.severity != Severity.OK]
        if not problems:
            rows.append([health.host, "OK", "", "all checks passed", ""])
        for finding in sorted(problems, key=lambda f: -f.severity):
            started = since.get((health.host, finding.check), now)
            rows.append([health.host, finding.severity.name, finding.check, finding.message[:100],
                         _ago(now - started)])
    counts = {s: sum(1 for h in results if h.worst == s) for s in Severity}
    summary = ", ".join(f"{n} {s.name}" for s, n in counts.items() if n)
    return (tabulate(rows, headers=["host", "severity", "check", "finding", "since"]) +
            f"\n\n{len(results)} hosts: {summary}; worst {worst(results).name}; swept in {elapsed:.2f}s\n")


def _ago(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f}s"
    if seconds < 5400:
        return f"{seconds / 60:.0f}m"
    if seconds < 172800:
        return f"{seconds / 3600:.0f}h"
    return f"{seconds / 86400:.0f}d"


def document(results: Sequence[HostHealth], since: Mapping[tuple[str, str], float], elapsed: float
             ) -> dict[str, Any]:
    return {
        "status": worst(results).name, "exit_code": int(worst(results)), "elapsed": round(elapsed, 3),
        "time": int(time.time()),
        "hosts": {h.host: {"status": h.worst.name, "latency": None if h.latency is None else round(h.latency, 3),
                           "findings": [{"check": f.check, "severity": f.severity.name, "message": f.message,
                                         "since": int(since.get((h.host, f.check), time.time()))}
                                        for f in h.findings]}
                  for h in results},
    }


def prometheus(results: Sequence[HostHealth], elapsed: float) -> str:
    def label(value: str) -> str:
        return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")

    lines = [
        "# HELP zeta_health_status Worst severity per host (0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN).",
        "# TYPE zeta_health_status gauge",
        *(f'zeta_health_status{{host="{label(h.host)}"}} {int(h.worst)}' for h in results),
        "# HELP zeta_health_check Severity of one check on one host.",
        "# TYPE zeta_health_check gauge",
        *(f'zeta_health_check{{host="{label(h.host)}",check="{label(f.check)}"}} {int(f.severity)}'
          for h in results for f in h.findings),
        "# HELP zeta_health_value The measured value of a check (percent, seconds, count) where it has one.",
        "# TYPE zeta_health_value gauge",
        *(f'zeta_health_value{{host="{label(h.host)}",check="{label(f.check)}"}} {f.value:g}'
          for h in results for f in h.findings if f.value is not None),
        "# HELP zeta_health_sweep_ok 1 when this file comes from a complete sweep.",
        "# TYPE zeta_health_sweep_ok gauge",
        "zeta_health_sweep_ok 1",
        "# HELP zeta_health_sweep_timestamp_seconds When the sweep ended (alert when it grows old).",
        "# TYPE zeta_health_sweep_timestamp_seconds gauge",
        f"zeta_health_sweep_timestamp_seconds {time.time():.0f}",
        "# HELP zeta_health_sweep_seconds Wall time of the sweep.",
        "# TYPE zeta_health_sweep_seconds gauge",
        f"zeta_health_sweep_seconds {elapsed:.3f}",
    ]
    return "\n".join(lines) + "\n"


def to_json(value: Any) -> str:
    return json.dumps(value, indent=2) + "\n"


def prometheus_failed(why: str) -> str:
    """What --output holds after a sweep that could not run: no stale "all OK" left behind."""
    reason = " ".join(why.split())[:200]
    return (f"# the last sweep could not run: {reason}\n"
            "# HELP zeta_health_sweep_ok 1 when this file comes from a complete sweep.\n"
            "# TYPE zeta_health_sweep_ok gauge\nzeta_health_sweep_ok 0\n"
            "# HELP zeta_health_sweep_timestamp_seconds When the sweep ended (alert when it grows old).\n"
            "# TYPE zeta_health_sweep_timestamp_seconds gauge\n"
            f"zeta_health_sweep_timestamp_seconds {time.time():.0f}\n")
