"""Where zetactl's time goes on a fleet: a first run and a no-op re-run of the benchmark workload on a lab,
split by phase (start-up, load + plan, connect, probe, apply, journal, report) and the controller's CPU
split by component (cProfile over the same in-process run). Writes its section of docs/benchmarks.md.

    .venv/bin/python benchmarks/breakdown.py --nodes 100

It starts its own lab (`zetactl lab up N --subnet 100 --dir benchmarks/.work/profile-lab`) and stops it at
the end. The per-host phases come from zetactl's own JSON report (`timings`); the components are the
profiler's internal CPU time per function (cProfile timed by `time.process_time`: a `send` during which the
kernel switched to a node's sshd counts only the CPU this process spent), grouped by the module the
function lives in.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import shutil
import statistics
import subprocess
import sys
import time
from contextlib import redirect_stdout
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from doc_sections import write_section
from lab_session import fresh_lab

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "benchmarks" / ".work"
LAB_DIR = WORK / "profile-lab"
HOME = WORK / "profile-home"
PYTHON = ROOT / ".venv" / "bin" / "python"
PLAYBOOK = ROOT / "benchmarks" / "workload" / "zetactl" / "bench.yml"
SUBNET = 100

# component -> substrings of the profiled function's file name (first match wins)
COMPONENTS = [
    ("SSH: key exchange, ciphers, packets (asyncssh, cryptography)", ("asyncssh", "cryptography", "nacl")),
    ("socket writes and reads (the kernel's loopback, on our CPU)", ("~:0(<method 'send'", "~:0(<method 'recv'",
                                                                    "~:0(<method 'connect'")),
    ("event loop (asyncio, selectors)", ("asyncio", "selectors")),
    ("journal (events, JSON, writes, fsync)", ("zetactl/journal.py", "json/", "posix.fsync", "posix.write")),
    ("load + render + plan (YAML, Jinja2)", ("zetactl/playbook", "zetactl/plan.py", "zetactl/inventory", "jinja2",
                                             "yaml", "ruamel", "zetactl/yamlsrc.py")),
    ("state machine, steps, remote scripts", ("zetactl/engine", "zetactl/steps")),
    ("report", ("zetactl/report.py", "tabulate")),
]


def startup_seconds() -> float:
    """Interpreter start and the imports of `zetactl deploy` (the median of 5), less a bare interpreter."""
    def timed(code: str) -> float:
        runs = []
        for _ in range(5):
            started = time.perf_counter()
            subprocess.run([str(PYTHON), "-c", code], check=True)
            runs.append(time.perf_counter() - started)
        return statistics.median(runs)
    return timed("import zetactl.cli.app, zetactl.deploy") - timed("pass")


def component(name: str) -> str:
    for label, needles in COMPONENTS:
        if any(n in name for n in needles):
            return label
    return "other (Python, typer, the rest)"


Profiled = tuple[dict[str, Any], dict[str, float], float, dict[str, float]]


def profiled_deploy(inventory: Path) -> Profiled:
    """One in-process `zetactl deploy --format json` under cProfile: (report, phases, wall, components)."""
    os.environ["ZETACTL_HOME"] = str(HOME)
    from zetactl.cli.app import main as cli_main

    sys.argv = ["zetactl", "deploy", str(PLAYBOOK), "-i", str(inventory), "--forks", "1000", "--format", "json",
                "--no-progress"]

    out = io.StringIO()
    profiler = cProfile.Profile(time.process_time)  # CPU, not wall: preemption by the nodes is not ours
    phases: dict[str, list[float]] = {}
    started = time.perf_counter()
    profiler.enable()
    with redirect_stdout(out):
        try:
            cli_main()
        except SystemExit as exc:
            if exc.code not in (0, None):
                raise SystemExit(f"deploy exited {exc.code}") from None
    profiler.disable()
    wall = time.perf_counter() - started
    report = json.loads(out.getvalue())
    for host in report["hosts"].values():
        for phase, seconds in host.get("timings", {}).items():
            phases.setdefault(phase, []).append(seconds)
    medians = {phase: statistics.median(values) for phase, values in phases.items()}
    stats = pstats.Stats(profiler)
    parts: dict[str, float] = {}
    for (file, line, function), (_, _, tottime, _, _) in stats.stats.items():  # type: ignore[attr-defined]
        label = component(f"{file}:{line}({function}")
        parts[label] = parts.get(label, 0.0) + tottime
    return report, medians, wall, parts


def section(nodes: int, startup: float, runs: dict[str, Profiled]) -> str:
    lines = [
        "<!-- profile:begin -->",
        "## Where zetactl's time goes",
        "",
        f"Written by `benchmarks/breakdown.py --nodes {nodes}` on {datetime.now(UTC).strftime('%Y-%m-%d %H:%M')} UTC "
        f"({os.cpu_count()} cores): the workload above on {nodes} lab nodes, in one process under cProfile "
        "(which slows the Python side, code making many small calls the most; compare the shares, not the "
        "seconds, with the tables above).",
        "",
        f"Start-up (interpreter and imports of `zetactl deploy`, beyond a bare interpreter): {startup:.2f} s.",
        "",
        "**Per host, median seconds** (zetactl's own `timings`: all hosts run at once, so a phase also waits for "
        "the 2 cores the nodes share with the controller)",
        "",
        "| run | wall (whole deploy) | connect | lock + probe | apply + verify | other per host |",
        "|---|---|---|---|---|---|",
    ]
    for name, (report, phases, wall, _) in runs.items():
        hosts = report["hosts"]
        per_host = statistics.median(h["elapsed"] for h in hosts.values())
        other = per_host - sum(phases.get(p, 0.0) for p in ("connect", "probe", "apply"))
        lines.append(f"| {name} | {wall:.2f} | {phases.get('connect', 0):.3f} | {phases.get('probe', 0):.3f} | "
                     f"{phases.get('apply', 0):.3f} | {other:.3f} |")
    lines += ["", "**Controller CPU by component** (the profiler's internal CPU time, `time.process_time`; share of "
              "the profiled run)", "",
              "| component | " + " | ".join(f"{name} s | share" for name in runs) + " |",
              "|---|" + "---|---|" * len(runs)]
    labels = [label for label, _ in COMPONENTS] + ["other (Python, typer, the rest)"]
    totals = {name: sum(parts.values()) for name, (_, _, _, parts) in runs.items()}
    for label in labels:
        cells = []
        for name, (_, _, _, parts) in runs.items():
            value = parts.get(label, 0.0)
            cells.append(f"{value:.2f} | {100 * value / totals[name]:.0f}%")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines += ["", "What the profile pointed to, and what was changed for it, is in "
              "[docs/ssh.md](ssh.md) (\"What a host costs\").", "<!-- profile:end -->", ""]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, default=100)
    parser.add_argument("--no-doc", action="store_true")
    args = parser.parse_args()
    env = {**os.environ, "ZETACTL_HOME": str(HOME)}
    shutil.rmtree(HOME, ignore_errors=True)
    with fresh_lab(LAB_DIR, args.nodes, SUBNET, env) as inventory:
        startup = startup_seconds()
        runs = {"first run": profiled_deploy(inventory), "no-op re-run": profiled_deploy(inventory)}
    for name, want in (("first run", 10), ("no-op re-run", 0)):
        changed = {h["changed"] for h in runs[name][0]["hosts"].values()}
        if changed != {want}:
            raise SystemExit(f"{name}: hosts changed {sorted(changed)} things, expected {want}")
    text = section(args.nodes, startup, runs)
    print(text)
    if not args.no_doc:
        write_section("profile", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
