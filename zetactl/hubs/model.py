"""The hubs and tenants the inventory declares (docs/hubs.md).

A hub host is any inventory host with `zeta_hubs`: a list of services, each

    {name: embedder, port: 8701, tenant_disk: 2G, tenant_memory: 1G}   # optional: url, memory_max

`tenant_disk`/`tenant_memory` are what one more tenant costs that service (checked against the host's real
free disk and memory before a tenant is added). A tenant runs on one tenant machine (an inventory host); its
identity on the hubs is `NAME@MACHINE`, where MACHINE is derived from the machine's pinned host key, so a
retried `tenant add` on the same machine reuses its own identity (never colliding with leftovers) and a
tenant moved to another machine gets a new one.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any

from zetactl.errors import BadInput
from zetactl.inventory import Host, Inventory

SERVICE_RE = re.compile(r"^[a-z][a-z0-9-]{0,19}\Z")
TENANT_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,30}\Z")
SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(i?B?)?\s*$", re.IGNORECASE)
UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


@dataclass(frozen=True)
class HubService:
    host: str  # the inventory host that runs it
    name: str  # the service kind: embedder, voice, ...
    port: int
    url: str  # base URL tenants call
    tenant_disk: int  # bytes one more tenant costs this service
    tenant_memory: int


def parse_size(value: Any, where: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    match = SIZE_RE.match(str(value)) if isinstance(value, str) else None
    if not match:
        raise BadInput(f"{where}: expected a size like 512M or 2G, not {value!r}")
    return int(float(match[1]) * UNITS[match[2].upper()])


def check_tenant_name(name: str) -> str:
    if not TENANT_RE.match(name):
        raise BadInput(f"tenant name {name!r}: lowercase letters, digits and '-', at most 31, "
                       "starting with a letter or digit")
    return name


def hub_services(inv: Inventory) -> list[HubService]:
    """Every hub service of the inventory, validated (host order, then the order declared)."""
    return [service for host in inv.hosts.values() for service in host_services(host)]


def host_services(host: Host) -> list[HubService]:
    """The hub services a host runs (its `zeta_hubs`), validated; [] for a host that is no hub."""
    services: list[HubService] = []
    declared = host.vars.get("zeta_hubs")
    if declared is not None:
        where = f"{host.source}: host {host.name}: zeta_hubs"
        if not isinstance(declared, list):
            raise BadInput(f"{where}: expected a list of services")
        seen: set[str] = set()
        for index, item in enumerate(declared):
            here = f"{where}[{index}]"
            if not isinstance(item, dict):
                raise BadInput(f"{here}: expected a mapping with name and port")
            unknown = sorted(set(item) - {"name", "port", "url", "tenant_disk", "tenant_memory", "memory_max"})
            if unknown:
                raise BadInput(f"{here}: unknown key(s) {', '.join(unknown)}")
            name = item.get("name")
            if not isinstance(name, str) or not SERVICE_RE.match(name):
                raise BadInput(f"{here}: name must be lowercase letters, digits and '-', not {name!r}")
            if name in seen:
                raise BadInput(f"{here}: service {name} is declared twice on {host.name}")
            seen.add(name)
            port = item.get("port")
            if not isinstance(port, int) or isinstance(port, bool) or not 1 <= port <= 65535:
                raise BadInput(f"{here}: port must be a number from 1 to 65535, not {port!r}")
            url = item.get("url", f"http://{host.address}:{port}")
            if not isinstance(url, str) or not re.fullmatch(r"https?://[A-Za-z0-9.:\[\]_-]+(/[A-Za-z0-9._~/-]*)?",
                                                              url):
                raise BadInput(f"{here}: url must be http(s)://HOST[:PORT][/PATH], not {url!r}")
            services.append(HubService(
                host=host.name, name=name, port=port, url=url.rstrip("/"),
                tenant_disk=parse_size(item.get("tenant_disk", "1G"), f"{here}.tenant_disk"),
                tenant_memory=parse_size(item.get("tenant_memory", "512M"), f"{here}.tenant_memory")))
    return services


def require_hubs(inv: Inventory) -> list[HubService]:
    services = hub_services(inv)
    if not services:
        raise BadInput(f"{inv.path}: no hub host (a host with zeta_hubs: [{{name: embedder, port: 8701}}, ...])")
    return services


def service_kinds(services: list[HubService]) -> list[str]:
    """Every service kind any hub offers: removal revokes each of them on every hub that offers it."""
    return sorted({s.name for s in services})


def hub_hosts(services: list[HubService]) -> list[str]:
    return sorted({s.host for s in services})


def machine_tag(host: Host) -> str:
    """8 hex characters naming the machine: from its pinned host key (a reinstalled machine is another one)."""
    from zetactl.creds.store import host_key

    return hashlib.sha256(host_key(host).encode()).hexdigest()[:8]


def identity(name: str, host: Host) -> str:
    return f"{check_tenant_name(name)}@{machine_tag(host)}"


def credential_name(tenant: str, service: str) -> str:
    """The tenant machine's credential holding its token for SERVICE (path /run/zeta/creds/hub-SERVICE)."""
    return f"hub-{service}.{tenant}"


def token_path(service: str) -> str:
    return f"/run/zeta/creds/hub-{service}"


ENDPOINTS_FILE = "/etc/zeta/hubs.env"


def endpoints_text(tenant_identity: str, services: list[HubService]) -> str:
    """What the tenant's apps read: their identity, each hub's URL and token file (no token)."""
    lines = ["# Written by `zetactl tenant add`: the hubs this tenant machine uses. Tokens are files under",
             "# /run/zeta/creds (tmpfs), sent as `Authorization: Bearer <token>` with `X-Hero-Context: $ZETA_TENANT`.",
             f"ZETA_TENANT={tenant_identity}"]
    for kind in service_kinds(services):
        key = kind.upper().replace("-", "_")
        lines.append(f"ZETA_HUB_{key}_URLS={','.join(s.url for s in services if s.name == kind)}")
        lines.append(f"ZETA_HUB_{key}_TOKEN_FILE={token_path(kind)}")
    return "\n".join(lines) + "\n"
