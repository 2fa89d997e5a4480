"""Node identity: trust (pin) host keys."""

from __future__ import annotations

import asyncio
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

    inv = load_inventory(inventory_path(inventory))
    if host not in inv.hosts:
        raise BadInput(f"unknown host {host!r} in {inv.path}")
    if not fingerprint.startswith("SHA256:"):
        raise BadInput("--fingerprint must look like SHA256:... (ssh-keygen -lf prints it)")
    seen = asyncio.run(trust_key(inv.host(host), fingerprint))
    err(f"pinned {host} {seen} in {inv.host(host).known_hosts}")


COMMANDS = {"trust": trust}
