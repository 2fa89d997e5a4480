"""`node trust`: pin a host's key after the operator checked its fingerprint out of band."""

from __future__ import annotations

from zetactl.errors import ZetaError
from zetactl.inventory import Host
from zetactl.transport import fingerprint, offered_key
from zetactl.transport.known_hosts import pin


async def trust(host: Host, expected: str) -> str:
    """Pin the host's key if (and only if) it has the fingerprint the operator checked out of band."""
    key = await offered_key(host)
    seen = fingerprint(key)
    if seen != expected:
        raise ZetaError(f"{host.name} offers {seen}, not {expected}: nothing was pinned")
    pin(host.known_hosts, host, key)
    return seen
