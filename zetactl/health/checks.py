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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

from zetactl.agents import FLOOR, parse_status
from zetactl.creds.envelope import VERSION as ENVELOPE_FORMAT
from zetactl.errors import BadInput
from zetactl.facts import facts_script
from zetactl.inventory import Host
from zetactl.remote import Records, Sh, frame, lines, names, sh, shown, source
from zetactl.remote.frame import fields
from zetactl.remote.runner import STATE_DIR
from zetactl.steps.credential import GENERATIONS
from zetactl.steps.credential import NODE_STATE as CREDS_STATE


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
        target = entry[kinds[0]]
        target = names.unit(target, f"{host.name}: zeta_health_checks unit") if kinds[0] == "unit" else \
            names.text(target, f"{host.name}: zeta_health_checks command")
        checks.append(CustomCheck(kinds[0], target, Severity[level]))
    return checks


def setting(host: Host, name: str, default: float) -> float:
    value = host.vars.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise BadInput(f"{host.name}: {name} must be a number, not {value!r}")
    return float(value)


def probe_script(host: Host, checks: list[CustomCheck], timeout: float, credentials: Sequence[str] = (),
                 extra: Sequence[Sh] = ()) -> Sh:
    """The sweep's one read-only script for a host: fields (see `read`) from zetactl's own shipped parts; the
    host's values (disks, credential names, custom checks) passed quoted."""
    disks = host.vars.get("zeta_health_disks") or ["/", "/nix", "/var", "/run"]
    if not isinstance(disks, list) or not all(isinstance(d, str) for d in disks):
        raise BadInput(f"{host.name}: zeta_health_disks must be a list of paths ({host.source})")
    parts = [
        Sh("exec 2>/dev/null"),
        source("health.sh"), source("agents.sh"),
        Sh("zk=facts"), facts_script(),
        Sh('zf agents "$(za_show)"'),
        sh(Sh("zh_disks"), *(names.path(d, "zeta_health_disks") for d in disks)),
        Sh("zf mem \"$(awk '/^MemTotal:/ {t=$2} /^MemAvailable:/ {m=$2} END {if (t) print int(m * 100 / t)}' "
           "/proc/meminfo)\""),
        sh(Sh("zh_file last"), f"{STATE_DIR}/last-run"),
        sh(Sh("zh_file switch"), f"{STATE_DIR}/nixos-switch"),
        sh(Sh("zh_file rollback"), f"{STATE_DIR}/nixos-rollback"),
        *(sh(Sh("zh_cred"), index, name, CREDS_STATE, GENERATIONS) for index, name in enumerate(credentials)),
    ]
    for index, check in enumerate(checks):
        if check.kind == "unit":
            parts.append(sh(Sh("zh_unit"), index, check.target))
        else:
            parts.append(sh(Sh("zh_command"), index, max(1, int(timeout)), check.target))
    parts.extend(extra)
    parts.append(Sh('zf clock "$(date +%s.%N)"'))  # last: slow checks above do not bias the skew
    return lines(*parts, Sh(":"))


@dataclass(frozen=True)
class Installed:
    """A credential as the node holds it (the sweep's credential fields)."""

    generation: str
    not_after: str
    stat: str  # mode:owner:group of the generation's file, or `missing`
    link: str  # where the link at the credential's path points
    value: str  # the digest of the value after its sealed header ("" when there is no header to check against)


@dataclass
class Read:
    """What the sweep's script read on one node."""

    records: Records
    facts: dict[str, str]
    marker: dict[str, str]  # the last-run marker (key=value lines)
    switch: dict[str, str]  # the record of the last switch zetactl confirmed
    rollback: dict[str, str]  # the record of the node's last rollback
    creds: dict[str, Installed]  # credential -> what the node holds
    custom: dict[int, str]  # custom check -> its answer

    def text(self, tag: str) -> str:
        return self.records.text(tag)


def read(records: Records, credentials: Sequence[str], checks: Sequence[CustomCheck]) -> Read:
    """The fields of a sweep's answer (BadAnswer when one of zetactl's own files on the node is malformed)."""
    creds = {}
    for index, name in enumerate(credentials):
        if f"cred{index}" in records:
            meta = fields(records.text(f"cred{index}"), f"{CREDS_STATE}/{name}.meta")
            creds[name] = Installed(meta.get("generation", ""), meta.get("not-after", ""),
                                    records.text(f"credstat{index}"), records.text(f"credlink{index}"),
                                    records.text(f"credvalue{index}"))
    marker = {}
    for line in records.text("last").split("\n"):
        key, _, value = line.partition("=")
        if line != "end" and key:
            marker[key] = value
    return Read(records, records.under("facts"), marker, fields(records.text("switch"), "nixos-switch record"),
                fields(records.text("rollback"), "nixos-rollback record"), creds,
                {i: records.text(f"custom{i}") for i in range(len(checks)) if f"custom{i}" in records})


def judge(host: Host, health: HostHealth, found: Read, sent: float, received: float,
          checks: list[CustomCheck], credentials: Mapping[str, Mapping[str, Any]]) -> None:
    """Turn what the node said into findings (every check reports, OK included)."""
    facts = found.facts
    # clock skew: the node's clock against the middle of the round trip
    try:
        skew = float(found.text("clock")) - received  # printed at the very end: only the way back is between them
        warn, crit = setting(host, "zeta_health_skew_warn", 2), setting(host, "zeta_health_skew_crit", 30)
        level = Severity.CRITICAL if abs(skew) >= crit else Severity.WARNING if abs(skew) >= warn else Severity.OK
        health.add("clock_skew", level, f"clock off by {skew:+.2f}s", skew)
    except ValueError:
        health.add("clock_skew", Severity.UNKNOWN, "the node did not report its clock")
    # generation, rollback, reboot
    current, confirmed = facts.get("current_system", ""), found.switch.get("system", "")
    generation = facts.get("generation", "?")
    rolled_at = found.rollback.get("at", "")
    shown_generation = shown(generation, line=True)
    if (frame.number(rolled_at) or 0) > 0 and current != confirmed:
        at = time.strftime("%Y-%m-%d %H:%M", time.gmtime(frame.number(rolled_at) or 0))
        health.add("nixos_generation", Severity.WARNING, f"rolled back to generation {shown_generation} at {at} "
                   "UTC (the last switch was not confirmed)")
    elif confirmed and current != confirmed:
        health.add("nixos_generation", Severity.WARNING, f"running generation {shown_generation}, not the system "
                   "zetactl last confirmed")
    else:
        health.add("nixos_generation", Severity.OK, f"generation {shown_generation}",
                   float(n) if (n := frame.number(generation)) is not None else None)
    reboot = facts.get("reboot_needed") == "yes"
    health.add("reboot_needed", Severity.WARNING if reboot else Severity.OK,
               "reboot needed (booted kernel/initrd differ)" if reboot else "no reboot needed", 1.0 if reboot else 0.0)
    failed = facts.get("failed_units", "").split()
    health.add("failed_units", Severity.CRITICAL if failed else Severity.OK,
               f"failed units: {shown(', '.join(failed), line=True)}" if failed else "no failed units",
               float(len(failed)))
    # agents on control-plane nodes
    active = sum(1 for state in parse_status(found.text("agents")).values() if state == "active")
    if "control_plane" in host.groups or host.role in ("control-plane", "control_plane"):
        health.add("agents", Severity.CRITICAL if active < FLOOR else Severity.OK,
                   f"{active} agents active (at least {FLOOR} needed)", float(active))
    # disk and memory
    dwarn, dcrit = setting(host, "zeta_health_disk_warn", 85), setting(host, "zeta_health_disk_crit", 95)
    if not found.text("disks"):
        health.add("disk", Severity.UNKNOWN, "the node did not report its disks (df failed?)")
    for entry in filter(None, found.text("disks").split("\n")):
        mount, _, used = entry.rpartition(" ")
        percent = float(frame.number(used.rstrip("%")) or 0)
        level = Severity.CRITICAL if percent >= dcrit else Severity.WARNING if percent >= dwarn else Severity.OK
        health.add(f"disk:{shown(mount, line=True)}", level, f"{shown(mount, line=True)} {percent:.0f}% used", percent)
    mem = found.text("mem")
    if frame.number(mem) is not None:
        available = float(frame.number(mem) or 0)
        mwarn, mcrit = setting(host, "zeta_health_mem_warn", 10), setting(host, "zeta_health_mem_crit", 5)
        level = Severity.CRITICAL if available <= mcrit else Severity.WARNING if available <= mwarn else Severity.OK
        health.add("memory", level, f"{available:.0f}% memory available", available)
    # last run
    outcome = found.marker.get("outcome")
    if outcome:
        bad = outcome not in ("ok", "changed", "reboot-required")
        health.add("last_run", Severity.WARNING if bad else Severity.OK,
                   f"last run {shown(found.marker.get('run_id', '?'), line=True)}: {shown(outcome, line=True)}")
    judge_credentials(health, found.creds, credentials, host)
    for index, check in enumerate(checks):
        answer = found.custom.get(index, "")
        ok = answer == "active" if check.kind == "unit" else answer == "exit-0"
        health.add(f"{check.kind}:{check.target}"[:80], Severity.OK if ok else check.severity,
                   f"{check.target}: {shown(answer, line=True) or 'no answer'}")


def judge_credentials(health: HostHealth, on_node: Mapping[str, Installed],
                      records: Mapping[str, Mapping[str, Any]], host: Host) -> None:
    soon = setting(host, "zeta_health_cred_warn_days", 14) * 86400
    now = time.time()
    for name, record in records.items():
        check = f"credential:{name}"
        installed = on_node.get(name)
        if installed is None:
            health.add(check, Severity.CRITICAL, f"{name} is not installed (zetactl creds push {name})")
            continue
        generation, stat, value = installed.generation, installed.stat, installed.value
        not_after = frame.number(installed.not_after) or 0
        sealed = record.get("hosts", {}).get(host.name, {}).get("digest", "")
        target = record["target"]
        if stat == "missing":
            health.add(check, Severity.CRITICAL, f"{name}: {target['path']} is missing (a reboot emptied /run?)")
        elif installed.link != f"{GENERATIONS}/{name}/{generation}":
            where = shown(installed.link, line=True) or "nothing"
            health.add(check, Severity.CRITICAL, f"{name}: {target['path']} links to {where}, not to generation "
                       f"{shown(generation, line=True)}")
        elif stat != f"{int(target['mode'], 8):o}:{target['owner']}:{target['group']}":
            health.add(check, Severity.CRITICAL, f"{name}: {target['path']} is {shown(stat, line=True)}, not "
                       f"{target['mode']}:{target['owner']}:{target['group']}")
        elif value and generation == str(record["generation"]) and value != sealed:
            health.add(check, Severity.CRITICAL, f"{name}: the value at {target['path']} was changed on the node: it "
                       f"does not match generation {generation}'s digest (zetactl creds push {name} reinstalls it)")
        elif not_after and not_after <= now:
            health.add(check, Severity.CRITICAL, f"{name} expired at "
                       f"{time.strftime('%Y-%m-%d %H:%M', time.gmtime(not_after))} UTC")
        elif generation != str(record["generation"]):
            health.add(check, Severity.WARNING, f"{name}: generation {shown(generation, line=True)} installed, "
                       f"{record['generation']} sealed (push pending)")
        elif not_after and not_after - now < soon:
            health.add(check, Severity.WARNING, f"{name} expires "
                       f"{time.strftime('%Y-%m-%d %H:%M', time.gmtime(not_after))} UTC")
        elif not value:
            health.add(check, Severity.WARNING, f"{name}: its value cannot be verified (installed by an older "
                       f"zetactl): zetactl creds rotate {name} installs one that can be")
        elif record.get("format") != ENVELOPE_FORMAT:
            health.add(check, Severity.WARNING, f"{name} was sealed in envelope format v{record.get('format')}, "
                       f"which zetactl no longer pushes: zetactl creds rotate {name} --from-file FILE")
        else:
            health.add(check, Severity.OK, f"{name} generation {generation}",
                       (not_after - now) / 86400 if not_after else None)
