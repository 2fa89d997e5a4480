"""Tenants on the shared hubs: add, remove, rotate; and the fleet-wide verify, reconcile and capacity.

Every operation follows the same order, and records each state change before the next one, so an
interrupted command leaves a record that the next `tenant ...` or `hub reconcile` completes:

    add      capacity on every hub host (nothing created when full) -> mint one token per service kind ->
             register the hashes on every hub that offers the kind (replacing any leftover of a failed
             attempt: one atomic registry change) -> deliver the tokens (sealed credentials) and the endpoints
             to the tenant machine -> prove from the tenant machine: accepted; no token, a wrong token, the
             token under another identity and under another service refused -> ready
    rotate   make before break: new tokens registered next to the old ones -> delivered -> proven accepted ->
             only then the old ones revoked everywhere -> proven refused -> old generation retired
    remove   revoke on every hub host for every service kind it offers (by identity: also tokens no record
             mentions) -> prove each refuses -> remove the tenant's files. A hub not reached, or not seen
             refusing, stays PENDING: non-zero exit naming it, `hub reconcile` finishes it.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import shutil
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import asyncssh
import yaml

from zetactl.creds import store as creds_store
from zetactl.errors import BadInput, ExitCode, Unreachable, ZetaError
from zetactl.hubs import probe, records, tokens
from zetactl.hubs.model import (
    ENDPOINTS_FILE,
    HubService,
    credential_name,
    endpoints_text,
    hub_hosts,
    identity,
    service_kinds,
    token_path,
)
from zetactl.hubs.records import Tenant, Token
from zetactl.hubs.registry import Entry, FileRegistry, RegistryBackend, RegistryError
from zetactl.inventory import Inventory
from zetactl.remote import BadAnswer, Sh, lines, script, sh, shown, source
from zetactl.remote.frame import number
from zetactl.remote.runner import run
from zetactl.steps.credential import GENERATIONS
from zetactl.steps.credential import NODE_STATE as CREDS_STATE
from zetactl.transport import ConnectOptions, connect

HUBS_STATE = "/var/lib/zeta/hubs"

T = TypeVar("T")
# restarted when a token changes (they load it with LoadCredential=, playbooks/templates/zeta-tenant.nix.j2);
# a machine without them is no error
TENANT_UNITS = ("zeta-tenant-apps.service",)


class HubFull(ZetaError):
    """A hub host has no room for one more tenant (nothing was created)."""


class DeliveryFailed(ZetaError):
    """The tenant machine was reached but refused or failed the delivery."""


@dataclass
class Capacity:
    host: str
    free_disk: int = 0
    mem_available: int = 0
    disk_per_tenant: int = 0
    mem_per_tenant: int = 0
    tenants: int = 0
    error: str = ""

    @property
    def fits(self) -> int:
        if self.error:
            return 0
        return max(0, min(self.free_disk // max(self.disk_per_tenant, 1),
                          self.mem_available // max(self.mem_per_tenant, 1)))


@dataclass
class Report:
    """What a command did, for the summary and the exit code."""

    done: list[str] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)  # hubs (or machines) left to finish: exit UNREACHABLE
    failed: list[str] = field(default_factory=list)  # proofs that failed: exit FAILED
    results: list[tuple[str, probe.Result]] = field(default_factory=list)  # (tenant, result)

    @property
    def exit_code(self) -> ExitCode:
        if self.failed:
            return ExitCode.FAILED
        return ExitCode.UNREACHABLE if self.pending else ExitCode.OK


@dataclass
class Hubs:
    """The hubs of one inventory and how to reach them."""

    inv: Inventory
    services: list[HubService]
    backend: RegistryBackend = field(default_factory=FileRegistry)
    options: ConnectOptions = field(default_factory=ConnectOptions)
    say: Callable[[str], None] = lambda message: None

    @property
    def hosts(self) -> list[str]:
        return hub_hosts(self.services)

    def on(self, host: str) -> list[HubService]:
        return [s for s in self.services if s.host == host]

    def offering(self, kind: str) -> list[HubService]:
        return [s for s in self.services if s.name == kind]

    async def each_hub(self, hosts: Iterable[str],
                       work: Callable[[asyncssh.SSHClientConnection, str], Awaitable[T]]) -> dict[str, T | ZetaError]:
        """Run `work` on each hub host over one connection each, concurrently; errors are returned."""

        async def one(host: str) -> T | ZetaError:
            try:
                conn = await connect(self.inv.host(host), self.options)
            except (Unreachable, RegistryError) as exc:
                return exc
            try:
                return await work(conn, host)
            except (Unreachable, RegistryError, BadAnswer) as exc:
                return exc
            finally:
                conn.close()

        hosts = sorted(set(hosts))
        return dict(zip(hosts, await asyncio.gather(*(one(h) for h in hosts)), strict=True))


# -- capacity ---------------------------------------------------------------------------------------------

def capacity_script() -> Sh:
    """Fields disk, mem (KiB) and tenants under $zk (scripts/hub_capacity.sh)."""
    return script("hub_capacity.sh", HUBS=HUBS_STATE)


async def capacity(hubs: Hubs) -> list[Capacity]:
    async def measure(conn: asyncssh.SSHClientConnection, host: str) -> Capacity:
        result = await run(conn, lines(Sh("zk=cap"), capacity_script()))
        mine = hubs.on(host)
        cap = Capacity(host, disk_per_tenant=sum(s.tenant_disk for s in mine),
                       mem_per_tenant=sum(s.tenant_memory for s in mine))
        try:
            found = result.records().under("cap")
        except BadAnswer as exc:
            cap.error = f"the hub host's answer was not well formed: {exc}"
            return cap
        cap.tenants = len([line for line in found.get("tenants", "").split("\n") if line])
        values = {k: n * 1024 for k in ("disk", "mem") if (n := number(found.get(k, ""))) is not None}
        if "disk" not in values or "mem" not in values:
            cap.error = f"could not read free disk and memory: {shown(result.err.strip()[-200:])}"
        cap.free_disk, cap.mem_available = values.get("disk", 0), values.get("mem", 0)
        return cap

    found = await hubs.each_hub(hubs.hosts, measure)
    return [value if isinstance(value, Capacity) else Capacity(host, error=str(value))
            for host, value in found.items()]


def size(n: int) -> str:
    value, unit = float(n), "B"
    for unit in ("B", "K", "M", "G", "T"):
        if value < 1024 or unit == "T":
            break
        value /= 1024
    return f"{value:.0f}B" if unit == "B" else f"{value:.1f}{unit}"


# -- registry changes and proofs --------------------------------------------------------------------------

async def register(hubs: Hubs, tenant: Tenant, tokens_: list[Token], *, replace_identities: Iterable[str] = ()
                   ) -> None:
    """Add these tokens to every hub that offers their kind; `replace_identities`: drop every other record of
    these identities in the same change (a retried add leaves no leftover). Updates the token records."""
    drop = set(replace_identities)

    async def change(conn: asyncssh.SSHClientConnection, host: str) -> None:
        for hub in hubs.on(host):
            add = [Entry(t.token_id, tenant.identity, t.service, t.hash) for t in tokens_ if t.service == hub.name]
            if add or drop:
                await hubs.backend.change(conn, hub.name, add=add, drop_tenants=drop)

    results = await hubs.each_hub({h for t in tokens_ for h in t.hubs}, change)
    for token in tokens_:
        for host in token.hubs:
            if not isinstance(results.get(host), ZetaError):
                token.hubs[host] = "active"


async def revoke(hubs: Hubs, tenant: Tenant, *, everything: bool) -> dict[str, str]:
    """Remove the tenant's retired tokens from every hub; `everything` (removal): every record of its identity
    on every hub host, for every service kind that host offers. Returns {hub host: error} for hubs not reached;
    tokens on the others become `revoking` until a proof says `revoked`."""
    retiring = [t for t in tenant.tokens if t.retired and t.state != "revoked"]
    plan = revocation_plan(hubs, tenant, everything=everything)

    async def change(conn: asyncssh.SSHClientConnection, host: str) -> None:
        for kind, ids, identities in plan[host]:
            await hubs.backend.change(conn, kind, drop_ids=ids, drop_tenants=identities)

    results = await hubs.each_hub(plan, change)
    errors = {h: str(e) for h, e in results.items() if isinstance(e, ZetaError)}
    for token in retiring:
        for host in token.hubs:
            if token.hubs[host] != "revoked":
                token.hubs[host] = "revoking"
    return errors


def revocation_plan(hubs: Hubs, tenant: Tenant, *, everything: bool
                    ) -> dict[str, list[tuple[str, list[str], list[str]]]]:
    """{hub host: [(service kind, token ids, identities)]}: the registry changes that revoke the tenant's
    retired tokens. For a removal (`everything`) every hub host gets one change for EVERY service kind it
    offers, dropping every record of the tenant's identity, whatever the records say it holds."""
    retiring = [t for t in tenant.tokens if t.retired and t.state != "revoked"]
    plan: dict[str, list[tuple[str, list[str], list[str]]]] = {}
    for hub in hubs.services:
        ids = sorted(t.token_id for t in retiring if t.service == hub.name)
        if everything or ids:
            plan.setdefault(hub.host, []).append((hub.name, ids, [tenant.identity] if everything else []))
    return plan


def other_identity(tenant: Tenant) -> str:
    """Another tenant's identity for the wrong-identity case: a real one when there is one."""
    others = [t.identity for t in records.all_tenants() if t.name != tenant.name and t.state == "ready"]
    return others[0] if others else f"zeta-probe@{secrets.token_hex(4)}"


async def prove_revoked(hubs: Hubs, tenant: Tenant, report: Report, old_files: dict[str, str]) -> None:
    """From the tenant machine, present each revoked token (file per token id in `old_files`) to each hub:
    a refusal settles it; no answer leaves it pending; an acceptance is a failure. When the machine cannot
    be reached, the hub's registry (read back) proves it, provided the hub answers."""
    todo = [(t, host) for t in tenant.tokens if t.retired for host, s in t.hubs.items() if s == "revoking"]
    if not todo:
        return
    machine = hubs.inv.hosts.get(tenant.machine)
    checks = [probe.Check("old-token", hub, old_files[t.token_id], tenant.identity)
              for t, host in todo for hub in hubs.on(host) if hub.name == t.service and t.token_id in old_files]
    try:
        if machine is None:  # retired: no longer in the inventory
            raise Unreachable(f"{tenant.machine} is no longer in the inventory")
        results = await probe.run_checks(machine, checks, hubs.options)
    except Unreachable:
        await _prove_by_registry(hubs, tenant, todo, report)
        return
    by_key = {(r.check.hub.host, r.check.hub.name): r for r in results}
    fallback: list[tuple[Token, str]] = []
    for token, host in todo:
        result = by_key.get((host, token.service))
        where = f"{token.service} on {host}"
        if result is None or result.code == "missing-file":  # the machine no longer holds it (rebooted)
            fallback.append((token, host))
            continue
        if result.ok:
            token.hubs[host] = "revoked"
            report.done.append(f"{where}: token {token.token_id} refused (revoked)")
        elif result.answered:
            report.failed.append(f"{where}: token {token.token_id} {result.verdict()} after revocation")
        else:
            report.pending.append(f"{where}: revocation of {token.token_id} not proven: {result.verdict()}")
        report.results.append((tenant.name, result))
    if fallback:
        await _prove_by_registry(hubs, tenant, fallback, report)


async def _prove_by_registry(hubs: Hubs, tenant: Tenant, todo: list[tuple[Token, str]], report: Report) -> None:
    from zetactl.engine.gate import http_check
    from zetactl.gate import GateCheck

    async def look(conn: asyncssh.SSHClientConnection, host: str) -> dict[str, tuple[set[str], str | None]]:
        out = {}
        for hub in hubs.on(host):
            listed = {e.token_id for e in await hubs.backend.read(conn, hub.name)}
            out[hub.name] = (listed, await http_check(conn, GateCheck("http", hub.url + "/healthz", timeout=5)))
        return out

    found = await hubs.each_hub({h for _, h in todo}, look)
    for token, host in todo:
        seen = found.get(host)
        where = f"{token.service} on {host}"
        if isinstance(seen, dict) and token.service in seen:
            listed, down = seen[token.service]
            if token.token_id in listed:
                why = "still in the registry"
            elif down:
                why = f"the hub does not answer ({down})"
            else:
                token.hubs[host] = "revoked"
                report.done.append(f"{where}: token {token.token_id} revoked (not presentable from the tenant "
                                   "machine: proven by the registry the running hub serves)")
                continue
        else:
            why = str(seen) if seen is not None else "not checked"
        report.pending.append(f"{where}: revocation of {token.token_id} not proven: {why}")


async def prove_tenant(hubs: Hubs, tenant: Tenant, report: Report) -> None:
    """The full accept/refuse proof from the tenant machine for its current tokens."""
    own = [hub for kind in sorted({t.service for t in tenant.current()}) for hub in hubs.offering(kind)]
    checks = probe.tenant_checks(tenant.identity, own, other_identity=other_identity(tenant))
    try:
        if tenant.machine not in hubs.inv.hosts:
            raise Unreachable(f"not in {hubs.inv.path}")
        results = await probe.run_checks(hubs.inv.host(tenant.machine), checks, hubs.options)
    except Unreachable as exc:
        report.pending.append(f"{tenant.name}: tenant machine {tenant.machine} unreachable: {exc}")
        return
    for result in results:
        report.results.append((tenant.name, result))
        where = f"{tenant.name}: {result.check.hub.name} on {result.check.hub.host}: {result.check.case}"
        if not result.ok:
            (report.failed if result.answered else report.pending).append(f"{where}: {result.verdict()}")


# -- delivery to the tenant machine -----------------------------------------------------------------------

def seal_tokens(hubs: Hubs, tenant: Tenant, minted: dict[str, tokens.Minted]) -> None:
    """Seal each new token as the next generation of the tenant's credential hub-KIND.TENANT, above the
    generation the machine already holds (left by an earlier tenant of that name, or another controller)."""
    host = hubs.inv.host(tenant.machine)
    names = [credential_name(tenant.name, t.service) for t in tenant.tokens if t.token_id in minted]
    held = asyncio.run(installed_generations(hubs, tenant.machine, names))
    for token in tenant.tokens:
        secret = minted.get(token.token_id)
        if secret is None:
            continue
        name = credential_name(tenant.name, token.service)
        previous = creds_store.load(name) if name in creds_store.names() else None
        record = creds_store.seal_for_hosts(name, secret.token, [host],
                                            creds_store.Target(path=token_path(token.service), units=TENANT_UNITS),
                                            not_after=0, previous=previous,
                                            min_generation=held.get(name, 0) + 1, tokens=True)
        token.generation = record.generation


async def installed_generations(hubs: Hubs, machine: str, names: list[str]) -> dict[str, int]:
    """The generation of each credential the machine holds (its markers); {} when it cannot be reached."""
    asked = lines(source("cred_generations.sh"),
                  *(sh(Sh("zc_generation"), index, name, CREDS_STATE) for index, name in enumerate(names)))
    try:
        async with await connect(hubs.inv.host(machine), hubs.options) as conn:
            records = (await run(conn, asked)).records()
    except (Unreachable, BadAnswer):
        return {}
    return {name: n for index, name in enumerate(names) if (n := number(records.text(f"g{index}"))) is not None}


def delivery_playbook(hubs: Hubs, tenant: Tenant, *, retire: bool = False) -> Path:
    kinds = sorted({t.service for t in tenant.current()})
    steps: list[dict[str, object]] = [
        {"name": f"{'retire old generations of ' if retire else ''}hub token {kind}",
         "credential": {"name": credential_name(tenant.name, kind), **({"retire": True} if retire else {})}}
        for kind in kinds]
    if not retire:
        served = [s for s in hubs.services if s.name in kinds]
        steps.append({"name": "hub endpoints folder", "directory": {"path": "/etc/zeta", "mode": "0755"}})
        steps.append({"name": "hub endpoints", "file": {"path": ENDPOINTS_FILE, "mode": "0644",
                                                        "content": endpoints_text(tenant.identity, served)}})
    document = {"name": f"tenant {tenant.name}", "hosts": tenant.machine, "steps": steps}
    text = f"# Written by zetactl tenant: {tenant.name} ({tenant.identity})\n" + yaml.safe_dump(document,
                                                                                               sort_keys=False)
    folder = records.hubs_dir() / ".playbooks"
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = folder / f"{'retire' if retire else 'deliver'}-{hashlib.sha256(text.encode()).hexdigest()[:12]}.yml"
    if not path.exists():
        path.write_text(text)
    return path


def deliver(hubs: Hubs, inventory: Path, tenant: Tenant, *, retire: bool = False) -> str | None:
    """Push the tenant's credentials and endpoints (a journaled deploy); None when done, else why not."""
    from zetactl.deploy import DeployRequest, deploy
    from zetactl.plan import Selection

    request = DeployRequest(playbook=delivery_playbook(hubs, tenant, retire=retire), inventory=inventory,
                            selection=Selection(limit=tenant.machine), connect_timeout=hubs.options.connect_timeout)
    outcome = deploy(request, progress=False).outcomes.get(tenant.machine)
    if outcome is None:
        return "not run"
    if outcome.status in ("ok", "changed"):
        if not retire:
            for token in tenant.current():
                name = credential_name(tenant.name, token.service)
                record = creds_store.load(name)
                if record.state == "pending":
                    record.state = "complete"
                    creds_store.save(record)
        return None
    failed = next((s.error for s in outcome.steps if s.error), "")
    return f"{outcome.status}: {outcome.error or failed}".strip(": ")


async def remove_files(hubs: Hubs, tenant: Tenant) -> str | None:
    kinds = sorted({t.service for t in tenant.tokens})
    if tenant.machine not in hubs.inv.hosts:  # retired: its files went with it
        for kind in kinds:
            shutil.rmtree(creds_store.creds_dir() / credential_name(tenant.name, kind), ignore_errors=True)
        return None
    removal = script("tenant_remove.sh", NAMES="\n".join(credential_name(tenant.name, k) for k in kinds),
                     PATHS="\n".join(token_path(k) for k in kinds), ENDPOINTS=ENDPOINTS_FILE,
                     GENS=GENERATIONS, STATE=CREDS_STATE)
    try:
        async with await connect(hubs.inv.host(tenant.machine), hubs.options) as conn:
            result = await run(conn, removal)
    except Unreachable as exc:
        return str(exc)
    if result.rc != 0:
        return f"exit {result.rc}: {shown(result.err.strip()[-200:])}"
    for kind in kinds:
        shutil.rmtree(creds_store.creds_dir() / credential_name(tenant.name, kind), ignore_errors=True)
    return None


# -- the commands ----------------------------------------------------------------------------------------

def _mint(hubs: Hubs, kinds: list[str]) -> tuple[list[Token], dict[str, tokens.Minted]]:
    now = int(time.time())
    made: list[Token] = []
    minted: dict[str, tokens.Minted] = {}
    for kind in kinds:
        new = tokens.mint()
        minted[new.token_id] = new
        made.append(Token(service=kind, token_id=new.token_id, hash=new.hash, created=now, generation=0,
                          hubs={s.host: "registering" for s in hubs.offering(kind)}))
    return made, minted


def add(hubs: Hubs, inventory: Path, name: str, machine: str) -> Report:
    if machine not in hubs.inv.hosts:
        raise BadInput(f"tenant machine {machine!r} is not in {hubs.inv.path}")
    ident = identity(name, hubs.inv.host(machine))
    report = Report()
    with records.locked(name):
        previous = records.load(name) if records.exists(name) else None
        if previous and previous.state != "adding" and previous.state != "removed":
            raise BadInput(f"tenant {name} is {previous.state} on {previous.machine}: "
                           + ("use `zetactl tenant rotate` for new tokens" if previous.state == "ready"
                              else "finish it first (zetactl hub reconcile, or tenant rotate/remove)"))
        if previous and previous.state == "removed" and previous.pending():
            raise BadInput(f"tenant {name} was removed but revocations are pending: zetactl hub reconcile first")
        hubs.say(f"{name}: adding on {machine} as {ident}: checking capacity on {len(hubs.hosts)} hub host(s)")
        caps = asyncio.run(capacity(hubs))
        unreachable = [f"{c.host} ({c.error})" for c in caps if c.error]
        if unreachable:
            raise Unreachable(f"cannot check capacity on {', '.join(unreachable)}: nothing was created")
        full = [c for c in caps if c.fits < 1]
        if full:
            raise HubFull("no room for one more tenant, nothing was created: " + "; ".join(
                f"{c.host} has {size(c.free_disk)} disk free (needs {size(c.disk_per_tenant)}) and "
                f"{size(c.mem_available)} memory available (needs {size(c.mem_per_tenant)})" for c in full))
        made, minted = _mint(hubs, service_kinds(hubs.services))
        leftovers = {ident} | ({previous.identity} if previous else set())
        tenant = Tenant(name=name, machine=machine, identity=ident, created=int(time.time()), tokens=made)
        records.save(tenant)
        hubs.say(f"{name}: registering {len(made)} token(s) on {len(hubs.hosts)} hub host(s)")
        asyncio.run(register(hubs, tenant, made, replace_identities=leftovers))
        records.save(tenant)
        missing = sorted({h for t in made for h, s in t.hubs.items() if s != "active"})
        if missing:
            raise Unreachable(f"tenant {name}: could not register on {', '.join(missing)}; the tenant stays "
                              f"'adding': run `zetactl tenant add {name} --machine {machine}` again")
        hubs.say(f"{name}: delivering tokens and endpoints to {machine}")
        seal_tokens(hubs, tenant, minted)
        records.save(tenant)
        problem = deliver(hubs, inventory, tenant)
        if problem:
            error = Unreachable if problem.startswith("unreachable") else DeliveryFailed
            raise error(f"tenant {name}: delivery to {machine} failed ({problem}); the tenant stays "
                              f"'adding': run `zetactl tenant add {name} --machine {machine}` again")
        tenant.files = "delivered"
        records.save(tenant)
        hubs.say(f"{name}: verifying from {machine}")
        asyncio.run(prove_tenant(hubs, tenant, report))
        if report.failed or report.pending:
            records.save(tenant)
            return report
        tenant.state = "ready"
        records.save(tenant)
        hubs.say(f"{name}: ready")
        report.done.append(f"{name} ready on {machine} as {ident}")
    return report


def rotate(hubs: Hubs, inventory: Path, name: str) -> Report:
    report = Report()
    with records.locked(name):
        tenant = records.load(name)
        if tenant.state not in ("ready", "rotating"):
            raise BadInput(f"tenant {name} is {tenant.state}: only a ready tenant can rotate")
        if tenant.state == "ready":
            made, minted = _mint(hubs, sorted({t.service for t in tenant.current()}))
            tenant.tokens += made  # the old ones stay valid until the new ones are proven
            tenant.state = "rotating"
            hubs.say(f"{name}: registering new tokens next to the old ones")
            records.save(tenant)
            seal_tokens(hubs, tenant, minted)
            records.save(tenant)
        else:
            hubs.say(f"{name}: continuing its rotation")
            unsealed = [t for t in _newest(tenant) if t.generation == 0]
            if unsealed:  # interrupted before sealing: nobody can hold these, replace them
                for token in unsealed:
                    token.retired = True
                made, minted = _mint(hubs, sorted(t.service for t in unsealed))
                tenant.tokens += made
                seal_tokens(hubs, tenant, minted)
                records.save(tenant)
        newest = _newest(tenant)
        asyncio.run(register(hubs, tenant, [t for t in newest if t.state != "active"]))
        records.save(tenant)
        missing = sorted({h for t in newest for h, s in t.hubs.items() if s != "active"})
        if missing:
            report.pending.append(f"new tokens not registered on {', '.join(missing)}: nothing revoked, the old "
                                  f"tokens keep working; run `zetactl tenant rotate {name}` again")
            return report
        hubs.say(f"{name}: delivering the new tokens to {tenant.machine}")
        problem = deliver(hubs, inventory, _only(tenant, newest))
        if problem:
            report.pending.append(f"tenant machine {tenant.machine}: delivery failed ({problem}): nothing revoked, "
                                  f"the old tokens keep working; run `zetactl tenant rotate {name}` again")
            return report
        hubs.say(f"{name}: verifying the new tokens from {tenant.machine}")
        asyncio.run(prove_tenant(hubs, _only(tenant, newest), report))
        if report.failed or report.pending:
            report.pending.append("new tokens not proven: nothing revoked")
            return report
        old = [t for t in tenant.tokens if t not in newest and not t.retired]
        old_files = {t.token_id: f"/run/zeta/creds/.gen/{credential_name(name, t.service)}/{t.generation}" for t in old}
        for token in old:
            token.retired = True
        records.save(tenant)
        hubs.say(f"{name}: revoking the old tokens on every hub")
        errors = asyncio.run(revoke(hubs, tenant, everything=False))
        records.save(tenant)
        report.pending += [f"{host}: revocation pending ({why})" for host, why in errors.items()]
        asyncio.run(prove_revoked(hubs, tenant, report, old_files))
        records.save(tenant)
        if not report.pending and not report.failed:
            problem = deliver(hubs, inventory, _only(tenant, newest), retire=True)
            if problem:
                report.pending.append(f"old generation left on {tenant.machine} ({problem})")
        tenant.state = "ready"
        records.save(tenant)
        hubs.say(f"{name}: rotated" + (" (revocations pending: zetactl hub reconcile)" if tenant.pending() else ""))
        report.done.append(f"{name}: new tokens {', '.join(t.token_id for t in newest)} in use")
    return report


def _newest(tenant: Tenant) -> list[Token]:
    """The latest token of each kind (the one a rotation brings in)."""
    latest: dict[str, Token] = {}
    for token in tenant.tokens:
        if not token.retired:
            latest[token.service] = token  # tokens are appended in order
    return list(latest.values())


def _only(tenant: Tenant, current: list[Token]) -> Tenant:
    """A view of the tenant whose current tokens are `current` (for delivery and proofs)."""
    view = Tenant(tenant.name, tenant.machine, tenant.identity, tenant.created, tenant.state,
                  tokens=[*current, *[t for t in tenant.tokens if t.retired]], files=tenant.files)
    return view


def remove(hubs: Hubs, inventory: Path, name: str) -> Report:
    report = Report()
    with records.locked(name):
        tenant = records.load(name)
        if tenant.state == "removed" and not tenant.pending() and tenant.files == "removed":
            report.done.append(f"{name} is already removed")
            return report
        tenant.state = "removing"
        for token in tenant.tokens:
            token.retired = True
            for hub in hubs.offering(token.service):  # hubs added since: revoked and proven there too
                token.hubs.setdefault(hub.host, "active")
        records.save(tenant)
        hubs.say(f"{name}: revoking every token of {tenant.identity} on {len(hubs.hosts)} hub host(s), "
                 f"every service kind ({', '.join(service_kinds(hubs.services))})")
        _finish_removal(hubs, tenant, report)
    return report


def _finish_removal(hubs: Hubs, tenant: Tenant, report: Report) -> None:
    errors = asyncio.run(revoke(hubs, tenant, everything=True))
    records.save(tenant)
    for host, why in errors.items():
        report.pending.append(f"hub host {host} not reached: revocation PENDING ({why})")
    files = {t.token_id: token_path(t.service) for t in tenant.tokens}
    hubs.say(f"{tenant.name}: proving every hub refuses the revoked tokens")
    asyncio.run(prove_revoked(hubs, tenant, report, files))
    records.save(tenant)
    if tenant.pending():
        tenant.state = "removing"
        records.save(tenant)
        return
    if tenant.files != "removed":
        hubs.say(f"{tenant.name}: removing its files from {tenant.machine}")
        problem = asyncio.run(remove_files(hubs, tenant))
        if problem:
            report.pending.append(f"tenant machine {tenant.machine}: its token files are left ({problem}); "
                                  "`zetactl hub reconcile` removes them")
        else:
            tenant.files = "removed"
    tenant.state = "removed"
    records.save(tenant)
    report.done.append(f"{tenant.name} removed: its tokens are refused by every hub")


def reconcile(hubs: Hubs, inventory: Path) -> Report:
    """Finish every pending registration, revocation and file removal; idempotent."""
    report = Report()
    for name in records.names():
        with records.locked(name):
            tenant = records.load(name)
            todo = tenant.pending()
            if tenant.state == "rotating":
                report.pending.append(f"{name}: rotation unfinished: run `zetactl tenant rotate {name}`")
            if tenant.state == "removing" or (tenant.state == "removed" and (todo or tenant.files != "removed")):
                hubs.say(f"{name}: finishing its removal")
                _finish_removal(hubs, tenant, report)
                continue
            if not todo:
                continue
            registering = [t for t in tenant.tokens if not t.retired and t.state in ("registering", "partial")]
            if registering:
                hubs.say(f"{name}: registering {len(registering)} token(s) where pending")
                asyncio.run(register(hubs, tenant, registering))
            if tenant.retiring():
                hubs.say(f"{name}: revoking retired token(s) where pending")
                errors = asyncio.run(revoke(hubs, tenant, everything=False))
                report.pending += [f"hub host {h} not reached: revocation PENDING ({why})" for h, why in errors.items()]
                files = {t.token_id: f"/run/zeta/creds/.gen/{credential_name(name, t.service)}/{t.generation}"
                         for t in tenant.tokens if t.retired}
                asyncio.run(prove_revoked(hubs, tenant, report, files))
            records.save(tenant)
            left = tenant.pending()
            report.pending += [f"{name}: {what} of {t.token_id} on {h} still pending" for t, h, what in left
                               if not any(h in p for p in report.pending)]
            if not left:
                report.done.append(f"{name}: finished")
    if not report.done and not report.pending and not report.failed:
        report.done.append("nothing pending")
    return report


def verify(hubs: Hubs, names: list[str] | None = None) -> Report:
    report = Report()
    chosen = names or [t.name for t in records.all_tenants() if t.state == "ready"]

    async def all_proofs() -> None:
        await asyncio.gather(*(prove_tenant(hubs, records.load(n), report) for n in chosen))

    asyncio.run(all_proofs())
    return report


def tokens_table(tenants: list[Tenant]) -> list[dict[str, object]]:
    """One row per token per hub host: never a token, only its public id."""
    rows: list[dict[str, object]] = []
    for tenant in tenants:
        for token in tenant.tokens:
            for host, state in sorted(token.hubs.items()):
                rows.append({"tenant": tenant.name, "identity": tenant.identity, "service": token.service,
                             "hub": host, "token_id": token.token_id,
                             "state": "pending-revoke" if state == "revoking" or (state == "active" and token.retired)
                             else state,
                             "created": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(token.created))})
    return rows

