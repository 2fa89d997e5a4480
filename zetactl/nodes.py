"""Node identity: register a new machine, rotate from a bootstrap key to a per-node key, retire it.

Never lock the operator out: a key is removed only after the one replacing it was proven over a
fresh connection, and the inventory points at a working key at every step, so an interruption
anywhere leaves a way in and a re-run finishes the job. Host keys: first contact is an explicit
trust decision (a fingerprint given out of band, or a confirmation on a terminal), then pinned.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import asyncssh

from zetactl.errors import BadInput, Unreachable, ZetaError
from zetactl.fileio import write_atomic
from zetactl.inventory import Host, Inventory, load_inventory, writer
from zetactl.paths import state_dir
from zetactl.remote import Records, Sh, lines, names, script, sh, shown, source
from zetactl.remote.runner import exchange, run
from zetactl.transport import ConnectOptions, connect, fingerprint, offered_key
from zetactl.transport.known_hosts import is_pinned, pin, pinned_keys, unpin

AUTHORIZED_KEYS = "/etc/ssh/authorized_keys.d/{user}"
FLOOR_CONTROL_PLANE = 3
KEY_LINE = re.compile(r"^ssh-ed25519 [A-Za-z0-9+/=]+( [A-Za-z0-9@._:-]{0,64})?\Z")


class IdentityError(ZetaError):
    pass


def fault_point(name: str) -> None:
    """Test hook: ZETACTL_FAULT=<name> kills the process here, like a cut connection or a dead laptop."""
    if os.environ.get("ZETACTL_FAULT") == name:
        os._exit(137)


def key_dir(name: str) -> Path:
    return state_dir() / "keys" / name


def public_line(private_key: Path) -> str:
    pub = private_key.with_name(private_key.name + ".pub")
    if pub.is_file():
        line = pub.read_text().strip()
    else:
        line = asyncssh.read_private_key(str(private_key)).export_public_key("openssh").decode().strip()
    key_type, blob = line.split()[:2]
    return f"{key_type} {blob}"


def node_key(name: str) -> Path:
    """The per-node identity (made once, kept in $ZETACTL_HOME/keys/NAME, 0600)."""
    path = key_dir(name) / "id_ed25519"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        key = asyncssh.generate_private_key("ssh-ed25519", comment=f"zetactl-{name}")
        write_atomic(path, key.export_private_key(), 0o600)
        write_atomic(path.with_name("id_ed25519.pub"), key.export_public_key(), 0o644)
    return path


def add_key_script(user: str, line: str) -> Sh:
    """Append the key if its blob is not there yet: temp file + rename, no line dropped or doubled."""
    return script("keys_add.sh", FILE=AUTHORIZED_KEYS.format(user=user), BLOB=line.split()[1], LINE=line)


def remove_keys_script(user: str, blobs: list[str], keep: str | None = None) -> Sh:
    """Drop the lines holding these key blobs; the file is replaced only by a complete rewrite that
    still holds `keep` (the key just proven), so a full disk or a failed grep never empties it."""
    if not blobs:
        return Sh("zf keys none")
    return script("keys_remove.sh", FILE=AUTHORIZED_KEYS.format(user=user), BLOBS="\n".join(blobs), KEEP=keep or "")


async def _run(host: Host, script_: Sh, options: ConnectOptions) -> Records:
    """One script on the node over a connection of its own; IdentityError when it fails there."""
    async with await connect(host, options) as conn:
        result = await run(conn, script_)
    if result.rc != 0:
        raise IdentityError(f"{host.name}: remote step failed (exit {result.rc}): {shown(result.err.strip()[-300:])}")
    return result.records()


async def _bootstrap(host: Host, options: ConnectOptions, command: Sh, stdin: str = "") -> str:
    """A request to the installer's bootstrap command (the only thing the bootstrap key may run)."""
    async with await connect(host, options) as conn:
        result = await exchange(conn, command, stdin.encode())
    if result.rc != 0:
        raise IdentityError(f"{host.name}: the bootstrap command refused (exit {result.rc}): "
                            f"{shown(result.err.strip()[-300:])}")
    return result.text


@dataclass(frozen=True)
class Registration:
    name: str
    fingerprint: str
    node_id: str
    mode: str  # homelab | bootstrap


async def register(inventory: Path, name: str, address: str, role: str, *, port: int = 22, user: str = "root",
                   expected: str | None, bootstrap_key: Path | None, confirm: Callable[[str], bool] | None,
                   options: ConnectOptions) -> Registration:
    names.host_name(name, "node name")
    names.host_name(address, "--address")
    names.role(role, "--role")
    names.account(user, "--user")
    inv = load_inventory(inventory)
    if name in inv.hosts:
        raise BadInput(f"{name} is already in {inventory}")
    template = _template_host(inv)
    operator_key = template.key_file
    host = replace(template, name=name, address=address, port=port, user=user,
                   key_file=bootstrap_key or operator_key, groups=("all", role.replace("-", "_")), vars={})
    # first contact: an explicit trust decision, then the key is pinned
    offered = await offered_key(host, options.connect_timeout)
    seen = fingerprint(offered)
    if expected is not None:
        if seen != expected:
            raise IdentityError(f"{name} ({address}) offers {seen}, not {expected}: nothing was pinned or changed")
    elif confirm is None:
        raise BadInput(f"{name} offers {seen}: first contact needs --host-key-fingerprint (checked out of band), "
                       "or a terminal to confirm it")
    elif not confirm(seen):
        raise IdentityError(f"{seen} not confirmed: nothing was pinned or changed")
    if is_pinned(host.known_hosts, host) and not _pinned_to(host, offered):
        raise IdentityError(f"{address}:{port} is already pinned to a different host key in {host.known_hosts}: "
                            "if the machine was reinstalled, use zetactl node rekey-host on its inventory entry")
    pin(host.known_hosts, host, offered)
    node_id = uuid.uuid4().hex
    if operator_key is None:
        raise BadInput("no operator key: set ansible_ssh_private_key_file in the inventory's all: vars")
    registered = script("node_register.sh", NODE_ID=node_id, BY=os.uname().nodename)
    if bootstrap_key is not None:  # production mode: the node only runs its bootstrap command for this key
        info = await _bootstrap(host, options, Sh("zeta-bootstrap info"))
        if "hostname" not in info:
            raise IdentityError(f"{name}: the bootstrap key did not reach the installer's bootstrap command")
        await _bootstrap(host, options, sh(Sh("zeta-bootstrap set-node-id"), node_id))
        await _bootstrap(host, options, Sh("zeta-bootstrap install-key"),
                         public_line(operator_key) + " zetactl-operator\n")
        as_operator = replace(host, key_file=operator_key)
        node_id = (await _run(as_operator, registered, options)).text("node_id")
        mode = "bootstrap"
    else:
        node_id = (await _run(host, lines(add_key_script(user, public_line(operator_key) + " zetactl-operator"),
                                          registered), options)).text("node_id")
        mode = "homelab"
    try:  # what the node (its installer) says it is: it goes into the inventory and into sealed envelopes
        names.node_id(node_id, f"{name}: the node id the node reports")
    except BadInput as exc:
        raise IdentityError(f"{exc.message}; nothing was written to {inventory}") from None
    values: dict[str, object] = {"ansible_host": address, "zeta_role": role, "zeta_node_id": node_id}
    if port != 22:
        values["ansible_port"] = port
    if user != template.user:
        values["ansible_user"] = user
    if bootstrap_key is not None:  # removed by `node rotate-identity`
        values["zeta_bootstrap_key"] = str(bootstrap_key.absolute())
    writer.add_host(inventory, role.replace("-", "_"), name, values)
    return Registration(name, seen, node_id, mode)


def _template_host(inv: Inventory) -> Host:
    """Connection defaults for a host not in the inventory yet (the `all` group's settings)."""
    defaults = inv.groups["all"].vars if "all" in inv.groups else {}
    base = inv.path.parent
    key = defaults.get("ansible_ssh_private_key_file")
    return Host(name="new-host", address="", port=int(defaults.get("ansible_port", 22)),
                user=str(defaults.get("ansible_user", "root")),
                key_file=(base / Path(str(key)).expanduser()) if key else None,
                known_hosts=base / Path(str(defaults.get("zeta_known_hosts", "known_hosts"))).expanduser(),
                groups=("all",), vars={})


async def rotate_identity(inventory: Path, name: str, options: ConnectOptions) -> str:
    """Install a per-node key, prove it, point the inventory at it, remove the old keys, prove them refused.

    The old keys are the one the inventory used (the operator's) and the installer's bootstrap key
    (`zeta_bootstrap_key`, set by `node register --bootstrap-key`). At every point at least one key
    logs in and the inventory names one that does: a re-run after any interruption finishes the job.
    """
    inv = load_inventory(inventory)
    host = inv.host(name)
    new_key = node_key(name)
    bootstrap = host.vars.get("zeta_bootstrap_key")
    # the key the inventory used, the shared operator key, the installer's bootstrap key: even on a
    # re-run after the inventory was already switched, every one of them goes
    candidates = (host.key_file, _template_host(inv).key_file, Path(str(bootstrap)) if bootstrap else None)
    old_keys = list(dict.fromkeys(k.resolve() for k in candidates
                                  if k is not None and k.exists() and k.resolve() != new_key.resolve()))
    as_new = replace(host, key_file=new_key)
    if host.key_file is not None and host.key_file.resolve() == new_key.resolve() and not old_keys:
        return "already on its per-node key"
    new_line = public_line(new_key) + f" zetactl-node-{name}"
    try:
        await _run(as_new, Sh(":"), options)
        installed = "was already installed"
    except Unreachable:
        await _run(host, add_key_script(host.user, new_line), options)
        installed = "installed"
    fault_point("rotate:installed")
    # prove the new key over a fresh connection, with a full shell
    if (await _run(as_new, Sh("zf proven yes"), options)).text("proven") != "yes":
        raise IdentityError(f"{name}: the per-node key logs in but gives no shell; the old keys stay")
    writer.set_host_var(inventory, name, "ansible_ssh_private_key_file", str(new_key))
    fault_point("rotate:switched")
    blobs = [public_line(k).split()[1] for k in old_keys]
    if blobs:
        await _run(as_new, remove_keys_script(host.user, blobs, keep=new_line.split()[1]), options)
    for old in old_keys:
        try:
            await _run(replace(host, key_file=old), Sh(":"), options)
        except Unreachable as exc:
            if "refused" not in str(exc):
                raise IdentityError(f"{name}: could not prove {old} refused: {exc}") from None
            continue
        raise IdentityError(f"{name}: {old} still logs in after its removal")
    if bootstrap:
        writer.set_host_var(inventory, name, "zeta_bootstrap_key", None)
    return (f"per-node key {installed} and proven; " +
            (f"{len(old_keys)} old key(s) removed and proven refused" if old_keys else "no old key to remove"))


async def retire(inventory: Path, name: str, options: ConnectOptions, *, force: bool) -> list[str]:
    inv = load_inventory(inventory)
    host = inv.host(name)
    done: list[str] = []
    if "control_plane" in host.groups or host.role in ("control-plane", "control_plane"):
        left = [h for h in inv.group_hosts("control_plane") if h != name]
        if len(left) < FLOOR_CONTROL_PLANE and not force:
            raise IdentityError(f"{name} is a control-plane node: retiring it leaves {len(left)} (quorum and the "
                                f"agent floor need {FLOOR_CONTROL_PLANE}); --force to retire anyway")
    from zetactl.creds import store

    for cred in store.names():
        record = store.load(cred)
        if name in record.hosts:
            del record.hosts[name]
            for envelope in record.dir.glob(f"*/{name}.age"):
                envelope.unlink()
            store.save(record)
            done.append(f"no longer sealing {cred}")
    bootstrap = host.vars.get("zeta_bootstrap_key")
    keys = {host.key_file, _template_host(inv).key_file, Path(str(bootstrap)) if bootstrap else None}
    blobs = [public_line(k).split()[1] for k in keys if k and k.exists()]
    try:
        await _run(host, lines(source("node_retire.sh"), remove_keys_script(host.user, blobs)), options)
        done.append("marked retired on the node; operator and per-node keys removed")
    except Unreachable as exc:
        if not force:
            raise IdentityError(f"{name} is unreachable ({exc}): its keys could not be removed there; retry when "
                                "it is back, or --force to drop it from the inventory anyway") from None
        done.append(f"node unreachable ({exc}): its keys could not be removed there (--force)")
    writer.remove_host(inventory, name)
    unpin(host.known_hosts, host)
    done.append(f"removed from {inventory} and its known_hosts")
    return done


def _pinned_to(host: Host, key: asyncssh.SSHKey) -> bool:
    key_type, blob = key.export_public_key("openssh").decode().split()[:2]
    return (key_type, blob) in pinned_keys(host.known_hosts, host)

