"""What a health sweep reads on a node (one read-only script) and how each finding is judged.

Severities follow the monitoring convention: OK 0, WARNING 1, CRITICAL 2, UNKNOWN 3. Thresholds and
extra checks come from inventory variables, so an operator adds a check without writing Python:

    zeta_health_checks:                 # per group or host
      - unit: k3s.service               # must be active
      - command: "test -S /run/k3s/containerd/containerd.sock"
        severity: warning               # default critical
    zeta_health_disks: [/, /nix, /var, /run]
    zeta_health_disk_warn: 85           # percent used
    zeta_health_disk_crit: 95
    zeta_health_mem_warn: 10            # percent available
    zeta_health_mem_crit: 5
    zeta_health_skew_warn: 2            # seconds
    zeta_health_skew_crit: 30
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

from zetactl.agents import AGENT_UNITS_SHOW, FLOOR, parse_status
from zetactl.creds.envelope import VERSION as ENVELOPE_FORMAT
from zetactl.errors import BadInput
from zetactl.facts import FACTS_SCRIPT
from zetactl.inventory import Host
from zetactl.steps.base import q


class Severity(IntEnum):
    OK = 0
    WARNING = 1
    CRITICAL = 2
    UNKNOWN = 3


@dataclass(frozen=True)
class Finding:
    check: str
    severity: Severity
    message: str
    value: float | None = None  # a number for Prometheus when the check has one


@dataclass
class HostHealth:
    host: str
    findings: list[Finding] = field(default_factory=list)
    latency: float | None = None

    @property
    def worst(self) -> Severity:
        return max((f.severity for f in self.findings), default=Severity.OK)

    def add(self, check: str, severity: Severity, message: str, value: float | None = None) -> None:
        self.findings.append(Finding(check, severity, message, value))


@dataclass(frozen=True)
class CustomCheck:
    kind: str  # unit | command
    target: str
    severity: Severity


def custom_checks(host: Host) -> list[CustomCheck]:
    raw = host.vars.get("zeta_health_checks") or []
    if not isinstance(raw, list):
        raise BadInput(f"{host.name}: zeta_health_checks must be a list ({host.source})")
    checks = []
    for entry in raw:
        kinds = [k for k in ("unit", "command") if isinstance(entry, dict) and k in entry]
        if len(kinds) != 1 or not isinstance(entry[kinds[0]], str) or set(entry) - {"unit", "command", "severity"}:
            raise BadInput(f"{host.name}: each zeta_health_checks entry has one of unit, command (and optionally "
                           f"severity), not {entry!r} ({host.source})")
        level = str(entry.get("severity", "critical")).upper()
        if level not in ("WARNING", "CRITICAL"):
            raise BadInput(f"{host.name}: zeta_health_checks severity is warning or critical, not {level.lower()!r}")
        checks.append(CustomCheck(kinds[0], entry[kinds[0]], Severity[level]))
    return checks


def number(host: Host, name: str, default: float) -> float:
    value = host.vars.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise BadInput(f"{host.name}: {name} must be a number, not {value!r}")
    return float(value)


def probe_script(host: Host, checks: list[CustomCheck], timeout: float, extra: list[str] | None = None) -> str:
    disks = host.vars.get("zeta_health_disks") or ["/", "/nix", "/var", "/run"]
    lines = [
        "exec 2>/dev/null",
        FACTS_SCRIPT,
        f"{{ {AGENT_UNITS_SHOW}\n}} | sed 's/^/agent /'",
        f"df -P -- {' '.join(q(str(d)) for d in disks)} | "
        "awk 'NR > 1 && !seen[$6]++ { print \"disk \" $6 \" \" $5 }'",
        "awk '/^MemTotal:/ {t=$2} /^MemAvailable:/ {m=$2} END {if (t) print \"mem \" int(m * 100 / t)}' /proc/meminfo",
        "[ -f /var/lib/zeta/state/last-run ] && sed 's/^/last_/' /var/lib/zeta/state/last-run",
        "[ -f /var/lib/zeta/state/nixos-switch ] && sed 's/^/switch_/' /var/lib/zeta/state/nixos-switch",
        "[ -f /var/lib/zeta/state/nixos-rollback ] && sed 's/^/rollback_/' /var/lib/zeta/state/nixos-rollback",
        "for f in /var/lib/zeta/creds/*.meta; do [ -f \"$f\" ] || continue; n=${f##*/}; n=${n%.meta}",
        "  p=$(sed -n 's/^path //p' \"$f\"); s=$(stat -L -c '%a:%U:%G' \"$p\" || echo missing)",
        "  echo \"cred $n $(sed -n 's/^generation //p' \"$f\") $(sed -n 's/^not-after //p' \"$f\") $s\"",
        "done",
    ]
    for index, check in enumerate(checks):
        if check.kind == "unit":
            lines.append(f"echo \"custom {index} $(systemctl is-active -- {q(check.target)})\"")
        else:
            lines.append(f"timeout {max(1, int(timeout))} sh -c {q(check.target)} </dev/null >/dev/null 2>&1; "
                         f"echo \"custom {index} exit-$?\"")
    lines += extra or []
    lines.append("echo \"clock $(date +%s.%N)\"")  # last: slow checks above do not bias the skew
    return "\n".join(lines) + "\n:\n"


def parse(stdout: str) -> dict[str, list[str]]:
    """`key rest` lines -> key -> list of rests (keys like disk, cred and custom repeat)."""
    values: dict[str, list[str]] = {}
    for line in stdout.splitlines():
        key, _, rest = line.partition(" ")
        if key:
            values.setdefault(key, []).append(rest.strip())
    return values


def judge(host: Host, health: HostHealth, values: Mapping[str, list[str]], sent: float, received: float,
          checks: list[CustomCheck], credentials: Mapping[str, Mapping[str, Any]]) -> None:
    """Turn what the node said into findings (every check reports, OK included)."""
    first = {k: v[0] for k, v in values.items() if v}
    # clock skew: the node's clock against the middle of the round trip
    try:
        skew = float(first["clock"]) - received  # printed at the very end: only the way back is between them
        warn, crit = number(host, "zeta_health_skew_warn", 2), number(host, "zeta_health_skew_crit", 30)
        level = Severity.CRITICAL if abs(skew) >= crit else Severity.WARNING if abs(skew) >= warn else Severity.OK
        health.add("clock_skew", level, f"clock off by {skew:+.2f}s", skew)
    except (KeyError, ValueError):
        health.add("clock_skew", Severity.UNKNOWN, "the node did not report its clock")
    # generation, rollback, reboot
    current, confirmed = first.get("current_system", ""), first.get("switch_system", "")
    generation = first.get("generation", "?")
    if "rollback_at" in first and float(first.get("rollback_at", 0)) > 0 and current != confirmed:
        at = time.strftime("%Y-%m-%d %H:%M", time.gmtime(float(first["rollback_at"])))
        health.add("nixos_generation", Severity.WARNING, f"rolled back to generation {generation} at {at} UTC "
                   "(the last switch was not confirmed)")
    elif confirmed and current != confirmed:
        health.add("nixos_generation", Severity.WARNING, f"running generation {generation}, not the system "
                   "zetactl last confirmed")
    else:
        health.add("nixos_generation", Severity.OK, f"generation {generation}",
                   float(generation) if generation.isdigit() else None)
    reboot = first.get("reboot_needed") == "yes"
    health.add("reboot_needed", Severity.WARNING if reboot else Severity.OK,
               "reboot needed (booted kernel/initrd differ)" if reboot else "no reboot needed", 1.0 if reboot else 0.0)
    failed = first.get("failed_units", "").split()
    health.add("failed_units", Severity.CRITICAL if failed else Severity.OK,
               f"failed units: {', '.join(failed)}" if failed else "no failed units", float(len(failed)))
    # agents on control-plane nodes
    active = sum(1 for state in parse_status("\n".join(values.get("agent", []))).values() if state == "active")
    if "control_plane" in host.groups or host.role in ("control-plane", "control_plane"):
        health.add("agents", Severity.CRITICAL if active < FLOOR else Severity.OK,
                   f"{active} agents active (at least {FLOOR} needed)", float(active))
    # disk and memory
    dwarn, dcrit = number(host, "zeta_health_disk_warn", 85), number(host, "zeta_health_disk_crit", 95)
    for entry in values.get("disk", []):
        mount, _, used = entry.rpartition(" ")
        percent = float(used.rstrip("%")) if used.rstrip("%").isdigit() else 0.0
        level = Severity.CRITICAL if percent >= dcrit else Severity.WARNING if percent >= dwarn else Severity.OK
        health.add(f"disk:{mount}", level, f"{mount} {percent:.0f}% used", percent)
    if "mem" in first and first["mem"].isdigit():
        available = float(first["mem"])
        mwarn, mcrit = number(host, "zeta_health_mem_warn", 10), number(host, "zeta_health_mem_crit", 5)
        level = Severity.CRITICAL if available <= mcrit else Severity.WARNING if available <= mwarn else Severity.OK
        health.add("memory", level, f"{available:.0f}% memory available", available)
    # last run
    outcome = first.get("last_outcome")
    if outcome:
        bad = outcome not in ("ok", "changed", "reboot-required")
        health.add("last_run", Severity.WARNING if bad else Severity.OK,
                   f"last run {first.get('last_run_id', '?')}: {outcome}")
    judge_credentials(health, values.get("cred", []), credentials, host)
    for index, check in enumerate(checks):
        answer = next((v.split(" ", 1)[1] for v in values.get("custom", []) if v.split(" ", 1)[0] == str(index)), "")
        ok = answer == "active" if check.kind == "unit" else answer == "exit-0"
        health.add(f"{check.kind}:{check.target}"[:80], Severity.OK if ok else check.severity,
                   f"{check.target}: {answer or 'no answer'}")


def judge_credentials(health: HostHealth, lines: list[str], records: Mapping[str, Mapping[str, Any]],
                      host: Host) -> None:
    on_node: dict[str, list[str]] = {}
    for line in lines:
        parts = line.split()
        if parts:
            on_node[parts[0]] = parts[1:]
    soon = number(host, "zeta_health_cred_warn_days", 14) * 86400
    now = time.time()
    for name, record in records.items():
        check = f"credential:{name}"
        fields = on_node.get(name)
        if fields is None or len(fields) < 3:
            health.add(check, Severity.CRITICAL, f"{name} is not installed (zetactl creds push {name})")
            continue
        generation, not_after, stat = fields[0], int(fields[1]) if fields[1].isdigit() else 0, fields[2]
        target = record["target"]
        if stat == "missing":
            health.add(check, Severity.CRITICAL, f"{name}: {target['path']} is missing (a reboot emptied /run?)")
        elif stat != f"{int(target['mode'], 8):o}:{target['owner']}:{target['group']}":
            health.add(check, Severity.CRITICAL, f"{name}: {target['path']} is {stat}, not "
                       f"{target['mode']}:{target['owner']}:{target['group']}")
        elif not_after and not_after <= now:
            health.add(check, Severity.CRITICAL, f"{name} expired at "
                       f"{time.strftime('%Y-%m-%d %H:%M', time.gmtime(not_after))} UTC")
        elif generation != str(record["generation"]):
            health.add(check, Severity.WARNING, f"{name}: generation {generation} installed, "
                       f"{record['generation']} sealed (push pending)")
        elif not_after and not_after - now < soon:
            health.add(check, Severity.WARNING, f"{name} expires "
                       f"{time.strftime('%Y-%m-%d %H:%M', time.gmtime(not_after))} UTC")
        elif record.get("format") != ENVELOPE_FORMAT:
            health.add(check, Severity.WARNING, f"{name} was sealed in envelope format v{record.get('format')}, "
                       f"which zetactl no longer pushes: zetactl creds rotate {name} --from-file FILE")
        else:
            health.add(check, Severity.OK, f"{name} generation {generation}",
                       (not_after - now) / 86400 if not_after else None)
