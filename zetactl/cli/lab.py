"""A local fleet of real OpenSSH servers on loopback that behave like NixOS nodes."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from zetactl.cli.common import FormatOpt, check_format, err
from zetactl.errors import BadInput
from zetactl.paths import default_lab_dir
from zetactl.report import print_json
from zetactl.tables import tabulate

if TYPE_CHECKING:
    from zetactl.lab import Lab

DirOpt = Annotated[Path | None, typer.Option("--dir", help="Lab directory (default: $ZETACTL_HOME/lab, "
                                             "i.e. ~/.local/state/zetactl/lab).", show_default=False)]
NodeArg = Annotated[str, typer.Argument(help="Lab node name, e.g. lab-003.")]


def _lab(directory: Path | None, subnet: int | None = None) -> Lab:
    from zetactl.lab import Lab  # on use: the other commands do not pay for the lab's import

    return Lab(directory or default_lab_dir(), subnet)


def up(count: Annotated[int, typer.Argument(help="Number of nodes.", min=1)] = 10, directory: DirOpt = None,
       timeout: Annotated[float, typer.Option("--timeout", help="Seconds to wait for every sshd.")] = 120.0,
       subnet: Annotated[int | None, typer.Option("--subnet", help="Nodes get 127.0.SUBNET.1 onwards "
                                                  "(default 10); two labs at once need different ones.")] = None,
       ) -> None:
    """Start (or resize to) COUNT nodes; writes DIR/inventory.yml and DIR/known_hosts.

    Example: zetactl lab up 10 && zetactl inventory list -i ~/.local/state/zetactl/lab/inventory.yml
    """
    lab = _lab(directory, subnet)
    nodes = lab.up(count, timeout=timeout)
    err(f"lab: {len(nodes)} nodes up in {lab.dir}\n  inventory:   {lab.inventory}\n  known_hosts: {lab.known_hosts}")


def fresh(count: Annotated[int, typer.Argument(help="Number of new nodes.", min=1)],
          bootstrap_key: Annotated[Path, typer.Option("--bootstrap-key", help="The installer's bootstrap public "
                                                      "key (ssh-ed25519 line): root's only authorized key.")],
          directory: DirOpt = None, output_format: FormatOpt = "table",
          timeout: Annotated[float, typer.Option("--timeout", help="Seconds to wait for every sshd.")] = 120.0,
          ) -> None:
    """Start COUNT nodes fresh from the zeta USB installer (group "fresh", after the existing nodes).

    They are NOT in DIR/known_hosts nor DIR/inventory.yml; root accepts only the bootstrap key, whose forced
    command is zeta-bootstrap (info, install-key, set-node-id). Prints each node's address and host key
    fingerprint (as read on its console; the key itself is DIR/nodes/NAME/host_key.pub).

    Example: zetactl lab fresh 2 --bootstrap-key ~/.ssh/zeta-bootstrap.pub
    """
    check_format(output_format)
    lab = _lab(directory)
    nodes = lab.fresh(count, bootstrap_key, timeout=timeout)
    from zetactl.lab.layout import fingerprint

    rows = []
    for node in nodes:
        host_key = (lab.dir / "nodes" / node.name / "host_key.pub").read_text().strip()
        rows.append({"node": node.name, "address": node.address, "fingerprint": fingerprint(host_key),
                     "host_key": host_key})
    if output_format == "json":
        print_json(sys.stdout, rows)
    else:
        sys.stdout.write(tabulate([[r["node"], r["address"], r["fingerprint"] + " (ED25519)"] for r in rows],
                                  headers=["node", "address", "host key fingerprint"]) + "\n")
        err(f"lab: {len(nodes)} fresh nodes in {lab.dir}: not in known_hosts; host keys in "
            f"{lab.dir / 'nodes'}/NAME/host_key.pub")


def down(directory: DirOpt = None) -> None:
    """Stop every node this lab started (by pid); node files stay for the next `lab up`.

    Example: zetactl lab down
    """
    stopped = _lab(directory).down()
    err(f"lab: stopped {stopped} nodes")


def status(directory: DirOpt = None, output_format: FormatOpt = "table") -> None:
    """Show each node: address, role group, pid, running/frozen/stopped, and its clock skew and slow link.

    Example: zetactl lab status --format json
    """
    check_format(output_format)
    lab = _lab(directory)
    links = {link.node: link for link in lab.links()}
    rows: list[dict[str, Any]] = []
    for n in lab.nodes():
        link = links.get(n.name)
        rows.append({"node": n.name, "address": n.address, "group": n.group, "pid": n.pid, "state": n.state(),
                     "skew": lab.skew_of(n.name),
                     "link": None if link is None else {"port": link.port, "delay_ms": link.delay_ms,
                                                        "rate_kib": link.rate_kib, "pid": link.pid,
                                                        "state": "running" if link.alive() else "stopped"}})
    if output_format == "json":
        print_json(sys.stdout, rows)
    else:
        table = []
        for row in rows:
            faults = [f"clock {row['skew']:+g}s"] if row["skew"] else []
            if row["node"] in links:
                faults.append(links[row["node"]].describe())
            table.append([row["node"], row["address"], row["group"], row["pid"], row["state"], "; ".join(faults)])
        sys.stdout.write(tabulate(table, headers=["node", "address", "group", "pid", "state", "faults"]) + "\n")
        if not rows:
            err("lab: no nodes (zetactl lab up N)")


def stop(node: NodeArg, directory: DirOpt = None) -> None:
    """Fault: stop a node's sshd (the machine is down). Example: zetactl lab stop lab-003"""
    _lab(directory).stop_node(node)


def start(node: NodeArg, directory: DirOpt = None) -> None:
    """Start a stopped node (a reboot: /run and /tmp are fresh). Example: zetactl lab start lab-003"""
    _lab(directory).start_node(node)


def reboot(node: NodeArg, directory: DirOpt = None) -> None:
    """Reboot a node: stop it and start it again (fresh /run, new boot_id, the profile's generation is booted).

    Example: zetactl lab reboot lab-003
    """
    _lab(directory).reboot(node)


def freeze(node: NodeArg, directory: DirOpt = None) -> None:
    """Fault: SIGSTOP the node (TCP connects, then silence). Example: zetactl lab freeze lab-003"""
    _lab(directory).freeze(node)


def thaw(node: NodeArg, directory: DirOpt = None) -> None:
    """Undo freeze. Example: zetactl lab thaw lab-003"""
    _lab(directory).thaw(node)


def rekey(node: NodeArg, directory: DirOpt = None) -> None:
    """Fault: give the node a new host key (a reinstall); known_hosts keeps the old pin.

    Example: zetactl lab rekey lab-003
    """
    key = _lab(directory).rekey(node)
    err(f"lab: {node} has a new host key: {key.split()[0]} {key.split()[1][:24]}...")


def hub_stop(node: NodeArg, service: Annotated[str, typer.Argument(help="embedder or voice.")],
             directory: DirOpt = None) -> None:
    """Fault: stop a hub service on the admin node (its unit goes inactive; the node stays up).

    Example: zetactl lab hub-stop lab-004 voice
    """
    _lab(directory).stop_hub(node, service)


def hub_start(node: NodeArg, services: Annotated[list[str] | None, typer.Argument(help="Services (default: "
                                                                                  "all).")] = None,
              directory: DirOpt = None) -> None:
    """Start the lab hub services on an admin node (`lab up` and a reboot start them by themselves).

    Example: zetactl lab hub-start lab-004 voice
    """
    _lab(directory).start_hubs(node, services or None)


def skew(node: NodeArg,
         seconds: Annotated[float, typer.Argument(help="Seconds the node's clock is off: positive ahead, "
                                                  "negative behind (after `--`), 0 ends it.")],
         directory: DirOpt = None) -> None:
    """Fault: the node's clock is off by SECONDS (libfaketime for every process of that node only).

    A negative offset goes after `--`. It lasts across reboots of the node until `lab unskew` (or SECONDS 0).

    Example: zetactl lab skew lab-003 120 && zetactl lab skew lab-002 -- -45 && zetactl lab unskew lab-003
    """
    lab = _lab(directory)
    lab.skew(node, seconds)
    if seconds:
        err(f"lab: {node}'s clock is {seconds:+g}s off (new processes at once, running ones within 10 s)")
    else:
        err(f"lab: {node}'s clock is right again")


def unskew(node: NodeArg, directory: DirOpt = None) -> None:
    """End a clock skew (the same as `lab skew NODE 0`). Example: zetactl lab unskew lab-003"""
    _lab(directory).skew(node, 0)
    err(f"lab: {node}'s clock is right again")


def slow(node: NodeArg,
         delay: Annotated[float | None, typer.Option("--delay", help="Milliseconds added to every chunk, each "
                                                     "way (the round trip gets twice that).")] = None,
         rate: Annotated[float | None, typer.Option("--rate", help="Throughput cap in KiB per second, each "
                                                    "way (default: none).")] = None,
         off: Annotated[bool, typer.Option("--off", help="End the slow link (the same as `lab fast`).")] = False,
         port: Annotated[int, typer.Option("--port", help="Where the delaying proxy listens, on the node's "
                                           "address.")] = 2222,
         directory: DirOpt = None) -> None:
    """Fault: a slow link to the node: a delaying proxy on ADDRESS:PORT relays to its sshd on port 22.

    While it is on, DIR/inventory.yml gives the host `ansible_port: PORT`: commands using it go over the link.

    DIR/known_hosts pins [ADDRESS]:PORT to the keys pinned for ADDRESS. Port 22 stays direct.

    Again on a slowed node: the new delay and rate apply in place, open connections stay up.

    Example: zetactl lab slow lab-002 --delay 150 --rate 64 && zetactl lab slow lab-002 --off
    """
    lab = _lab(directory)
    if off:
        if delay is not None or rate is not None:
            raise BadInput("--off takes no --delay or --rate")
        fast(node, directory)
        return
    if delay is None:
        raise BadInput("lab slow needs --delay MS (or --off)")
    link = lab.slow(node, delay, rate, port)
    err(f"lab: {node} is behind a slow link: {link.address}:{link.port} -> {link.address}:22, "
        f"{link.delay_ms:g} ms each way{'' if link.rate_kib is None else f', {link.rate_kib:g} KiB/s'} "
        f"(proxy pid {link.pid}); {lab.inventory.name} has ansible_port {link.port} for it")


def fast(node: NodeArg, directory: DirOpt = None) -> None:
    """End a slow link: the proxy stops, the inventory points at port 22 again. Example: zetactl lab fast lab-002"""
    ended = _lab(directory).fast(node)
    err(f"lab: {node} is direct again" if ended else f"lab: {node} had no slow link")


PathArg = Annotated[str, typer.Argument(help="Absolute path on the node.")]


def fill(node: NodeArg, path: PathArg = "/var", directory: DirOpt = None) -> None:
    """Fault: a full disk at PATH (its own small filesystem, filled; what it held is hidden until unfill).

    Example: zetactl lab fill lab-004 /var/lib/zeta/hubs
    """
    _lab(directory).fill_disk(node, path)


def unfill(node: NodeArg, path: PathArg = "/var", directory: DirOpt = None) -> None:
    """Undo fill. Example: zetactl lab unfill lab-004 /var/lib/zeta/hubs"""
    _lab(directory).unfill_disk(node, path)


COMMANDS = {
    "fill": fill, "unfill": unfill, "hub-stop": hub_stop, "hub-start": hub_start,
    "up": up, "fresh": fresh, "down": down, "status": status, "stop": stop, "start": start, "freeze": freeze,
    "thaw": thaw, "rekey": rekey, "reboot": reboot, "skew": skew, "unskew": unskew, "slow": slow, "fast": fast,
}
