"""Node identity: register, trust, rotate to a per-node key, retire."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer

from zetactl.cli.common import InventoryOpt, err, inventory_path
from zetactl.errors import BadInput
from zetactl.inventory import load_inventory


def trust(host: Annotated[str, typer.Argument(help="Host name from the inventory.")],
          fingerprint: Annotated[str, typer.Option("--fingerprint", help="SHA256:... checked out of band "
                                                   "(e.g. on the node's console: ssh-keygen -lf "
                                                   "/etc/ssh/ssh_host_ed25519_key.pub).")],
          inventory: InventoryOpt = None) -> None:  # type: ignore[assignment]
    """Pin HOST's current key in the inventory's known_hosts if it has exactly FINGERPRINT.

    Example: zetactl node trust lab-003 --fingerprint SHA256:abc...
    """
    from zetactl.hostkeys import trust as trust_key

    target = load_inventory(inventory_path(inventory)).host(host)
    if not fingerprint.startswith("SHA256:"):
        raise BadInput("--fingerprint must look like SHA256:... (ssh-keygen -lf prints it)")
    seen = asyncio.run(trust_key(target, fingerprint))
    err(f"pinned {host} {seen} in {target.known_hosts}")



def _confirm_on_terminal(name: str) -> Callable[[str], bool] | None:
    """Ask on a terminal (never silently); None when there is none (then a fingerprint is required)."""
    if not (sys.stdin.isatty() and sys.stderr.isatty()):
        return None

    def confirm(seen: str) -> bool:
        err(f"{name} offers the host key {seen}.\nCheck it on the node's console "
            "(ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub).")
        return input("Trust it? Type 'yes' to pin it: ").strip() == "yes"

    return confirm


def register(
    host: Annotated[str, typer.Argument(help="Name for the new node in the inventory.")],
    address: Annotated[str, typer.Option("--address", help="Its address (or DNS name).")],
    role: Annotated[str, typer.Option("--role", help="control-plane, worker-gpu, admin, tenant ...: the inventory "
                                      "group it joins (dashes become underscores).")],
    host_key_fingerprint: Annotated[str | None, typer.Option(
        "--host-key-fingerprint", help="SHA256:... read on the node's console; without it, a terminal "
        "confirmation is required (never silent).")] = None,
    bootstrap_key: Annotated[Path | None, typer.Option(
        "--bootstrap-key", help="Production mode: the installer's narrow key (the node runs only its bootstrap "
        "command for it); follow with `node rotate-identity`.")] = None,
    port: Annotated[int, typer.Option("--port")] = 22,
    user: Annotated[str, typer.Option("--user")] = "root",
    inventory: InventoryOpt = None,  # type: ignore[assignment]
    connect_timeout: Annotated[float, typer.Option("--connect-timeout")] = 10.0,
) -> None:
    """Register a new machine: check and pin its host key, install the operator's key, record its node id,
    write it into the inventory (comments and order kept), leave a registered marker on it.

    Example: zetactl node register gpu3 --address 10.0.0.23 --role worker-gpu --host-key-fingerprint SHA256:...
    """
    from zetactl.nodes import register as do_register
    from zetactl.transport import ConnectOptions

    if host_key_fingerprint is not None and not host_key_fingerprint.startswith("SHA256:"):
        raise BadInput("--host-key-fingerprint must look like SHA256:... (ssh-keygen -lf prints it)")
    done = asyncio.run(do_register(
        inventory_path(inventory), host, address, role, port=port, user=user, expected=host_key_fingerprint,
        bootstrap_key=bootstrap_key, confirm=None if host_key_fingerprint else _confirm_on_terminal(host),
        options=ConnectOptions(connect_timeout=connect_timeout)))
    err(f"registered {done.name} ({done.mode} mode): host key {done.fingerprint} pinned, node id {done.node_id}"
        + ("; next: zetactl node rotate-identity " + done.name if done.mode == "bootstrap" else ""))


def rekey_host(host: Annotated[str, typer.Argument(help="Host name from the inventory.")],
               fingerprint: Annotated[str, typer.Option("--fingerprint", help="The reinstalled machine's new "
                                                        "SHA256:... host key fingerprint, checked out of band.")],
               inventory: InventoryOpt = None) -> None:  # type: ignore[assignment]
    """Re-pin a reinstalled machine's new host key (the same check as `node trust`).

    Example: zetactl node rekey-host gpu3 --fingerprint SHA256:...
    """
    trust(host, fingerprint, inventory)


def rotate_identity(host: Annotated[str, typer.Argument(help="Host name from the inventory.")],
                    inventory: InventoryOpt = None,  # type: ignore[assignment]
                    connect_timeout: Annotated[float, typer.Option("--connect-timeout")] = 10.0) -> None:
    """Move HOST to its own per-node key: install it, prove it over a fresh connection, point the inventory
    at it, remove the old (bootstrap) key, prove the old key refused. Safe to re-run after any interruption.

    Example: zetactl node rotate-identity gpu3
    """
    from zetactl.nodes import rotate_identity as do_rotate
    from zetactl.transport import ConnectOptions

    err(f"{host}: " + asyncio.run(do_rotate(inventory_path(inventory), host,
                                            ConnectOptions(connect_timeout=connect_timeout))))


def retire(host: Annotated[str, typer.Argument(help="Host name from the inventory.")],
           force: Annotated[bool, typer.Option("--force", help="Retire a control-plane node even below the "
                                               "floor of 3.")] = False,
           inventory: InventoryOpt = None,  # type: ignore[assignment]
           connect_timeout: Annotated[float, typer.Option("--connect-timeout")] = 10.0) -> None:
    """Retire HOST: stop sealing credentials to it, mark it retired and remove zetactl's keys on it, remove it
    from the inventory and known_hosts. Refuses a control-plane node that would leave fewer than 3.

    Example: zetactl node retire gpu3
    """
    from zetactl.nodes import retire as do_retire
    from zetactl.transport import ConnectOptions

    _revoke_tenants_on(host, inventory, connect_timeout, force=force)
    for line in asyncio.run(do_retire(inventory_path(inventory), host,
                                      ConnectOptions(connect_timeout=connect_timeout), force=force)):
        err(f"{host}: {line}")


def _revoke_tenants_on(host: str, inventory: Path | None, connect_timeout: float, *, force: bool) -> None:
    """A retired tenant machine's tenants are removed first: revoked on every hub, proven refused."""
    from zetactl.hubs import records

    held = [t for t in records.all_tenants() if t.machine == host and (t.state != "removed" or t.pending())]
    if not held:
        return
    from zetactl.cli.tenant import hubs_for
    from zetactl.errors import ExitCode
    from zetactl.hubs import tenants
    from zetactl.nodes import IdentityError

    hubs, path = hubs_for(inventory, connect_timeout)
    for tenant in held:
        report = tenants.remove(hubs, path, tenant.name)
        for line in report.done + report.pending + report.failed:
            err(f"{host}: tenant {tenant.name}: {line}")
        if report.exit_code != ExitCode.OK and not force:
            raise IdentityError(f"{host}: tenant {tenant.name}'s revocation is not finished, so the node is not "
                                "retired: `zetactl hub reconcile`, then retire again (or --force: the pending "
                                "revocations stay in `hub tokens` and `health`)")


COMMANDS = {"register": register, "trust": trust, "rekey-host": rekey_host, "rotate-identity": rotate_identity,
            "retire": retire}
