"""The hub part of the health sweep (docs/hubs.md, "In health"), inside each host's one probe script.

    tenant machine   hub_token:SERVICE@HUB   the accept/refuse proof of `hub verify`, from the machine
    hub host         hub_revocations         pending revocations on this hub (controller records): CRITICAL
                     hub_capacity            how many more tenants fit (real free disk and memory):
                                             CRITICAL at 0, WARNING below zeta_health_hub_fits_warn (default 3)
"""

from __future__ import annotations

from dataclasses import dataclass, field

from zetactl.health.checks import HostHealth, Severity, setting
from zetactl.hubs import probe
from zetactl.hubs.model import HubService, hub_services
from zetactl.hubs.records import Tenant, all_tenants
from zetactl.inventory import Host, Inventory
from zetactl.remote import Records, Sh, lines
from zetactl.remote.frame import number


@dataclass
class HubView:
    """What the sweep needs of the hubs: read once on the controller, before any connection."""

    services: list[HubService] = field(default_factory=list)
    tenant_of: dict[str, Tenant] = field(default_factory=dict)  # tenant machine -> its ready tenant
    pending: dict[str, list[str]] = field(default_factory=dict)  # hub host -> what is pending there
    checks: dict[str, list[probe.Check]] = field(default_factory=dict)  # tenant machine -> its proof

    def lines(self, host: Host) -> list[Sh]:
        """Parts of the sweep's script for this host (fields under `hub.`, the proof, and `cap.`, the capacity)."""
        out = []
        if host.name in self.checks:
            out.append(lines(Sh("("), probe.script(self.checks[host.name]), Sh(") 2>/dev/null")))
        if any(s.host == host.name for s in self.services):
            from zetactl.hubs.tenants import capacity_script

            out.append(lines(Sh("("), Sh("zk=cap"), capacity_script(), Sh(") 2>/dev/null")))
        return out


def hub_view(inv: Inventory) -> HubView:
    view = HubView(services=hub_services(inv))
    if not view.services:
        return view
    tenants = all_tenants()
    for tenant in tenants:
        for token, hub, what in tenant.pending():
            view.pending.setdefault(hub, []).append(f"{what} of {tenant.name}'s {token.service} token "
                                                    f"{token.token_id}")
        if tenant.state == "ready" and tenant.machine in inv.hosts:
            view.tenant_of[tenant.machine] = tenant
            kinds = sorted({t.service for t in tenant.current()})
            own = [s for kind in kinds for s in view.services if s.name == kind]
            other = next((t.identity for t in tenants if t.name != tenant.name and t.state == "ready"),
                         "zeta-probe@00000000")
            view.checks[tenant.machine] = probe.tenant_checks(tenant.identity, own, other_identity=other)
    return view


def judge_hubs(host: Host, health: HostHealth, records: Records, view: HubView) -> None:
    checks = view.checks.get(host.name)
    if checks:
        results = probe.parse(records, checks)
        for hub in dict.fromkeys(r.check.hub for r in results):
            answers = [r for r in results if r.check.hub == hub]
            bad = [f"{r.check.case}: {r.verdict()}" for r in answers if not r.ok]
            health.add(f"hub_token:{hub.name}@{hub.host}", Severity.CRITICAL if bad else Severity.OK,
                       "; ".join(bad) if bad else f"{view.tenant_of[host.name].name}'s token accepted, "
                       f"{len(answers) - 1} wrong requests refused", float(len(bad)))
    mine = [s for s in view.services if s.host == host.name]
    if not mine:
        return
    pending = view.pending.get(host.name, [])
    health.add("hub_revocations", Severity.CRITICAL if pending else Severity.OK,
               f"{len(pending)} pending (zetactl hub reconcile): " + "; ".join(pending[:5]) if pending
               else "no pending revocations", float(len(pending)))
    found = records.under("cap")
    cap = {k: n * 1024 for k in ("disk", "mem") if (n := number(found.get(k, ""))) is not None}
    if "disk" not in cap or "mem" not in cap:
        health.add("hub_capacity", Severity.UNKNOWN, "could not read free disk and memory")
        return
    fits = min(cap["disk"] // max(1, sum(s.tenant_disk for s in mine)),
               cap["mem"] // max(1, sum(s.tenant_memory for s in mine)))
    warn = setting(host, "zeta_health_hub_fits_warn", 3)
    level = Severity.CRITICAL if fits < 1 else Severity.WARNING if fits < warn else Severity.OK
    health.add("hub_capacity", level, f"room for {fits} more tenant(s)", float(fits))
