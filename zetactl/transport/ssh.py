"""Open one SSH connection to a host, checking its key against zetactl's pinned known_hosts.

There is no code path without host-key checking: `known_hosts` is always the pinned file (asyncssh
treats a known_hosts argument of None as "accept anything", so None is never passed). ~/.ssh/config is not read:
what connects where comes from the inventory alone.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import asyncssh
from asyncssh.encryption import get_encryption_algs
from asyncssh.kex import get_kex_algs

from zetactl.errors import BadInput
from zetactl.errors import Unreachable as Unreachable
from zetactl.inventory import Host
from zetactl.transport.known_hosts import is_pinned, loaded


class HostKeyRefused(Unreachable):
    """The host's key is not the pinned one (unknown host or changed key): nothing was touched."""


@dataclass(frozen=True)
class ConnectOptions:
    connect_timeout: float = 10.0  # TCP + SSH handshake + login: a frozen sshd never answers
    keepalive_interval: float = 10.0
    keepalive_count_max: int = 3


def fingerprint(key: asyncssh.SSHKey) -> str:
    return str(key.get_fingerprint("sha256"))


async def offered_key(host: Host, timeout: float = 10.0) -> asyncssh.SSHKey:
    """The host key the server offers (read, not trusted: for showing and for `node trust`)."""
    try:
        key = await asyncio.wait_for(asyncssh.get_server_host_key(
            host.address, host.port, config=None,
            server_host_key_algs=["ssh-ed25519", "ecdsa-sha2-nistp256", "rsa-sha2-512", "rsa-sha2-256"]), timeout)
    except (OSError, asyncssh.Error, TimeoutError) as exc:
        raise Unreachable(f"cannot read the host key of {host.address}:{host.port}: {exc}") from None
    if key is None:
        raise Unreachable(f"{host.address}:{host.port} offered no host key")
    return key


async def _offered_fingerprint(host: Host, options: ConnectOptions) -> str:
    try:
        return fingerprint(await offered_key(host, options.connect_timeout))
    except Unreachable:
        return "(could not read the offered key)"


# Ciphers, most preferred first: AES-GCM (AES-NI on both ends) costs the controller a fraction of
# chacha20-poly1305 in asyncssh, which builds a new cipher context per packet; both are AEAD, and
# chacha20-poly1305 stays for peers without AES-GCM. The inventory's `zeta_ssh_ciphers` overrides it.
CIPHERS = ("aes128-gcm@openssh.com", "aes256-gcm@openssh.com", "chacha20-poly1305@openssh.com")


def algorithms(host: Host) -> dict[str, list[str]]:
    """asyncssh's algorithm options for this host: `zeta_ssh_ciphers` and `zeta_ssh_kex` (lists, most
    preferred first) from the inventory; without `zeta_ssh_kex`, asyncssh's default order (post-quantum
    hybrids first when the server offers one, else curve25519-sha256) is kept (docs/ssh.md)."""
    chosen: dict[str, list[str]] = {}
    for var, option, default in (("zeta_ssh_ciphers", "encryption_algs", CIPHERS), ("zeta_ssh_kex", "kex_algs", None)):
        value = host.vars.get(var, default)
        if value is None:
            continue
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list | tuple) or not value or not all(isinstance(v, str) for v in value):
            raise BadInput(f"{host.name}: {var} must be a list of algorithm names ({host.source})")
        known = {a.decode() for a in (get_encryption_algs() if option == "encryption_algs" else get_kex_algs())}
        unknown = [v for v in value if v not in known]
        if unknown:
            raise BadInput(f"{host.name}: {var}: unknown or unavailable here: {', '.join(unknown)} ({host.source})")
        chosen[option] = list(value)
    return chosen


async def connect(host: Host, options: ConnectOptions) -> asyncssh.SSHClientConnection:
    known_hosts = host.known_hosts
    try:
        pinned = loaded(known_hosts)
    except (OSError, ValueError) as exc:
        raise Unreachable(f"cannot read the pinned host keys in {known_hosts}: {exc}. Nothing was touched.") from None
    client_keys = [str(host.key_file)] if host.key_file else ()
    try:
        return await asyncio.wait_for(
            asyncssh.connect(
                host.address,
                port=host.port,
                username=host.user,
                known_hosts=pinned if pinned is not None else ([], [], []),
                client_keys=client_keys,
                agent_path=None if host.key_file else (),
                config=None,
                connect_timeout=options.connect_timeout,
                login_timeout=options.connect_timeout,
                keepalive_interval=options.keepalive_interval,
                keepalive_count_max=options.keepalive_count_max,
                **algorithms(host),
            ),
            options.connect_timeout + 1,
        )
    except asyncssh.HostKeyNotVerifiable:
        offered = await _offered_fingerprint(host, options)
        if is_pinned(known_hosts, host):
            raise HostKeyRefused(
                f"host key CHANGED for {host.name} ({host.address}:{host.port}): it now offers {offered}, "
                f"which does not match the key pinned in {known_hosts}. Nothing was touched. If the machine "
                f"was reinstalled, re-pin it: zetactl node trust {host.name} --fingerprint {offered}"
            ) from None
        raise HostKeyRefused(
            f"unknown host {host.name} ({host.address}:{host.port}): no key pinned in {known_hosts}; it "
            f"offers {offered}. Check that fingerprint out of band, then: "
            f"zetactl node trust {host.name} --fingerprint {offered}"
        ) from None
    except asyncssh.PermissionDenied as exc:
        raise Unreachable(f"login refused for {host.user}@{host.address}: {exc.reason}") from None
    except TimeoutError:
        raise Unreachable(f"no answer from {host.address}:{host.port} within {options.connect_timeout:g}s") from None
    except (OSError, asyncssh.Error) as exc:
        raise Unreachable(f"cannot connect to {host.address}:{host.port}: {exc}") from None
