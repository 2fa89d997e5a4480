"""A NixOS rollout on the lab, in health-gated waves: wall time and where it goes.

On a fresh lab of N nodes (default 50) it deploys a playbook that changes one NixOS module per node
and switches (nixos_module + nixos_rebuild with confirm over a fresh connection), in waves of 10%
with a gate between waves (a unit active and a command). It runs the playbook twice: the rollout
(every node switches: one new generation each) and the no-op re-run (nothing switches). The split
comes from the per-host phase timings zetactl puts in its JSON report (connect, probe, apply,
switch, confirm, gate), summed over hosts, and from the run journal (time spent between waves).
Writes the table to docs/benchmarks-rollout.md.

    .venv/bin/python benchmarks/rollout.py --nodes 50
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "benchmarks" / ".work"
LAB_DIR = WORK / "rollout-lab"
ZETACTL = ROOT / ".venv" / "bin" / "zetactl"
DOC = ROOT / "docs" / "benchmarks-rollout.md"
SUBNET = 100
PHASES = ("connect", "probe", "apply", "switch", "confirm", "gate")

PLAYBOOK = """\
name: rollout benchmark
hosts: all
serial: "10%"
gate:
  - unit: sshd.service
    timeout: 30
  - command: "test -L /run/current-system"
    timeout: 30
steps:
  - name: the module that changes
    nixos_module:
      dest: /etc/nixos/zeta/zz-bench.nix
      content: |
        { config, ... }: {
          environment.etc."zeta-bench".text = "revision {{ revision }} on {{ inventory_hostname }}";
        }
  - name: switch
    nixos_rebuild: {confirm_timeout: 60}
"""


def zetactl(*args: str, env: dict[str, str]) -> tuple[float, float, subprocess.CompletedProcess[str]]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    proc = subprocess.run([str(ZETACTL), *args], capture_output=True, text=True, env=env, timeout=3600)
    wall = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), proc


def deploy(playbook: Path, revision: int, env: dict[str, str], expect: str) -> dict[str, Any]:
    wall, cpu, proc = zetactl("deploy", str(playbook), "-i", str(LAB_DIR / "inventory.yml"), "-e",
                              f"revision={revision}", "--format", "json", env=env)
    if proc.returncode != 0:
        raise SystemExit(f"deploy failed (exit {proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-2000:]}")
    document: dict[str, Any] = json.loads(proc.stdout)
    wanted = {"changed": "changed", "ok": "ok"}[expect]
    wrong = {h: v["status"] for h, v in document["hosts"].items() if v["status"] != wanted}
    if wrong:
        raise SystemExit(f"expected every host {wanted}, got {wrong}")
    document["_wall"], document["_cpu"] = wall, cpu
    return document


def wave_gaps(home: Path, run_id: str) -> tuple[int, float]:
    """(waves, seconds between the last host-end of a wave and the next wave's start) from the journal."""
    events = [json.loads(line) for line in (home / "runs" / run_id / "journal.jsonl").read_text().splitlines()]
    waves = [e for e in events if e.get("event") == "wave"]
    gaps = 0.0
    last_end = None
    for event in events:
        if event.get("event") == "host-end":
            last_end = event["t"]
        elif event.get("event") == "wave" and last_end is not None:
            gaps += event["t"] - last_end
    return len(waves), gaps


def split(document: dict[str, Any]) -> dict[str, tuple[float, float]]:
    """phase -> (sum over hosts, median per host), seconds."""
    result = {}
    for phase in PHASES:
        values = [h["timings"].get(phase, 0.0) for h in document["hosts"].values()]
        result[phase] = (sum(values), statistics.median(values))
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, default=50)
    parser.add_argument("--no-doc", action="store_true")
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("the lab needs root")
    home = WORK / "rollout-home"
    shutil.rmtree(home, ignore_errors=True)
    env = {**os.environ, "ZETACTL_HOME": str(home)}
    playbook = WORK / "rollout.yml"
    WORK.mkdir(parents=True, exist_ok=True)
    playbook.write_text(PLAYBOOK)
    if (LAB_DIR / "lab.json").exists():
        zetactl("lab", "down", "--dir", str(LAB_DIR), env=env)
    shutil.rmtree(LAB_DIR, ignore_errors=True)
    started = time.monotonic()
    _, _, up = zetactl("lab", "up", str(args.nodes), "--dir", str(LAB_DIR), "--subnet", str(SUBNET),
                       "--timeout", "300", env=env)
    if up.returncode != 0:
        raise SystemExit(f"lab up failed: {up.stderr}")
    try:
        print(f"lab: {args.nodes} nodes up in {time.monotonic() - started:.1f}s", file=sys.stderr)
        rollout = deploy(playbook, 1, env, "changed")
        noop = deploy(playbook, 1, env, "ok")
        connect_wall, _, _ = zetactl("run", "true", "-i", str(LAB_DIR / "inventory.yml"), env=env)
    finally:
        zetactl("lab", "down", "--dir", str(LAB_DIR), env=env)
    waves, gaps = wave_gaps(home, rollout["run_id"])
    rows = []
    for label, document in (("rollout (every node switches)", rollout), ("no-op re-run", noop)):
        parts = split(document)
        rows.append((label, document, parts))
    lines = [
        "# Benchmark: a NixOS rollout in health-gated waves",
        "",
        f"Written by `benchmarks/rollout.py` on {datetime.now(UTC).strftime('%Y-%m-%d %H:%M')} UTC, on "
        f"this machine: {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"{platform.system()} {platform.release()}. Reproduce with:",
        "",
        "```",
        f".venv/bin/python benchmarks/rollout.py --nodes {args.nodes}",
        "```",
        "",
        f"{args.nodes} lab nodes, `serial: \"10%\"` ({waves} waves), a gate of 2 checks (a unit active, a command) "
        "after each wave, one NixOS module changed per node then `nixos_rebuild` (switch in a detached unit, "
        "confirmed over a fresh SSH connection, node-side rollback timer armed).",
        "",
        "| run | wall s | controller CPU s | " + " | ".join(f"{p} s (sum / median)" for p in PHASES) + " |",
        "|---|---|---|" + "---|" * len(PHASES),
    ]
    for label, document, parts in rows:
        cells = [f"{parts[p][0]:.2f} / {parts[p][1]:.3f}" for p in PHASES]
        lines.append(f"| {label} | {document['_wall']:.2f} | {document['_cpu']:.2f} | " + " | ".join(cells) + " |")
    lines += [
        "",
        f"Between waves (last host of a wave done to the next wave's start, summed): {gaps:.3f}s. For scale, "
        f"`zetactl run true` on all {args.nodes} nodes at once (connect and one command each) took "
        f"{connect_wall:.2f}s. Each wave waits for its slowest host, so a rollout in waves is the sum of its "
        "waves: the switch and its confirmation (a second SSH login per node), not the probes, set the pace.",
        "",
    ]
    lines += [
        "`sum` adds the phase over all hosts (host-seconds); `median` is per host. `switch` is the time from "
        "starting the detached switch unit to reading its result; `confirm` is the fresh connection that "
        "proves the node reachable and writes the verdict; `gate` runs after each host's steps.",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    if not args.no_doc:
        DOC.write_text(text)
        print(f"wrote {DOC}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
