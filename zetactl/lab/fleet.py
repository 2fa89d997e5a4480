"""Start, stop and inspect the lab fleet: one namespaced `sshd` per node, tracked by pid."""

from __future__ import annotations

import contextlib
import glob
import itertools
import json
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import yaml

from zetactl.errors import LabError
from zetactl.lab.layout import (
    DEFAULT_SUBNET,
    FRESH_GROUP,
    HUB_REGISTRY,
    LAB_HUBS,
    OVERLAID,
    NodeSpec,
    boot_script,
    bootstrap_authorized_line,
    ed25519_public_line,
    new_host_key,
    node_spec,
    seed_node,
    write,
)
from zetactl.remote import Sh

BIN_DIR = Path(__file__).parent / "bin"
BOOT_ENV = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}
FORBIDDEN_ROOTS = tuple(f"/{tree}" for tree in (*OVERLAID, "run"))

# Clock skew (`Lab.skew`): libfaketime (Debian's faketime package) in the node's own /etc/ld.so.preload, the
# offset in its /etc/faketimerc.
#
# SKEW_SHM: while a node is skewed its /dev/shm (its own tmpfs) is read-only. Every process that loads
# libfaketime otherwise creates a POSIX semaphore and shared memory there, shares them with its children
# through FAKETIME_SHARED, and unlinks them when it exits. sshd's pre-authentication child is forked from such
# an owner and runs in a seccomp sandbox that kills it (SIGSYS) for that unlink: no login would work. A process
# that execs instead of exiting leaves its pair behind, and one killed while holding the semaphore hangs its
# children. With /dev/shm read-only libfaketime's sem_open fails, which it takes quietly: no shared state at
# all, which the plain offset this lab uses does not need.
SKEW_SHM = "zeta-lab-shm"  # the source name of the node's /dev/shm tmpfs (lab/scripts/boot.sh)
SKEW_SHM_SCRIPT = Sh('mount -o "remount,bind,$1" /dev/shm')
FAKETIME_LIBS = ("/usr/lib/*/faketime/libfaketime.so.1", "/usr/lib/faketime/libfaketime.so.1")
MAX_SKEW = 10 * 365 * 86400  # seconds either way
# Slow links (`Lab.slow`): zetactl/lab/slowlink.py listens on the node's address at this port (unless told
# another) and relays to its sshd on port 22.
SLOW_LINK_PORT = 2222
MAX_DELAY_MS = 60_000


def libfaketime() -> str | None:
    """The path of libfaketime.so.1 on this machine, or None (apt-get install faketime)."""
    for pattern in FAKETIME_LIBS:
        for found in sorted(glob.glob(pattern)):
            if Path(found).is_file():
                return found
    return None


def known_hosts_names(line: str) -> set[str]:
    """The host names of a known_hosts entry (`127.0.10.2`, `[127.0.10.2]:2222`); none for other lines."""
    fields = line.split()
    return set(fields[0].split(",")) if len(fields) >= 3 and not line.startswith("#") else set()


def skew_text(seconds: float) -> str:
    """An offset as libfaketime reads it from faketimerc (`+120`, `-5`, `+0.25`): never in exponent form."""
    return f"{seconds:+.6f}".rstrip("0").rstrip(".")


@dataclass(frozen=True)
class LabNode:
    name: str
    address: str
    group: str
    pid: int
    started: int  # /proc/PID/stat starttime: with the pid, identifies the process we started

    def alive(self) -> bool:
        return process_start_time(self.pid) == self.started

    def state(self) -> str:
        if not self.alive():
            return "stopped"
        try:
            status = Path(f"/proc/{self.pid}/status").read_text()
        except OSError:
            return "stopped"
        line = next((ln for ln in status.splitlines() if ln.startswith("State:")), "")
        return "frozen" if "T" in line.split()[1:2] else "running"

    def path(self, remote: str) -> Path:
        """A path as the node sees it, readable from the controller (through /proc/PID/root)."""
        return Path(f"/proc/{self.pid}/root") / remote.lstrip("/")


def node_index(name: str) -> int:
    """0-based index of lab-NNN (-1 for any other name)."""
    number = name.removeprefix("lab-")
    return int(number) - 1 if number != name and number.isdigit() else -1


def process_start_time(pid: int) -> int:
    """The process's start time in clock ticks, or -1 when it is gone (or a zombie)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return -1
    fields = stat.rsplit(")", 1)[1].split()
    return -1 if fields[0] in ("Z", "X") else int(fields[19])


@dataclass(frozen=True)
class LabHub:
    """A hub service process (zeta-lab-hub) running inside an admin node's namespaces."""

    node: str
    service: str
    address: str
    port: int
    pid: int
    started: int

    def alive(self) -> bool:
        return process_start_time(self.pid) == self.started


@dataclass(frozen=True)
class LabLink:
    """A slow link in front of a node: zetactl/lab/slowlink.py on ADDRESS:PORT, relaying to ADDRESS:22."""

    node: str
    address: str
    port: int
    delay_ms: float
    rate_kib: float | None
    pid: int
    started: int

    def alive(self) -> bool:
        return process_start_time(self.pid) == self.started

    def describe(self) -> str:
        rate = "" if self.rate_kib is None else f", {self.rate_kib:g} KiB/s"
        return f"slow link :{self.port} {self.delay_ms:g} ms{rate}" + ("" if self.alive() else " (proxy gone)")


FILL_SCRIPT = Sh("""set -e
mkdir -p "$1"
mount -t tmpfs -o size=128k zeta-lab-full "$1"
dd if=/dev/zero of="$1/.zeta-lab-fill" bs=4k 2>/dev/null || true
""")

Members = list[tuple[int, int]]  # (pid, start time) of the processes of one node


def namespace_members(pids: Iterable[int]) -> dict[int, Members]:
    """For each node's sshd pid, every process in its mount namespace (one scan of /proc for all)."""
    own = os.readlink("/proc/self/ns/mnt")
    by_namespace: dict[str, int] = {}
    for pid in pids:
        with contextlib.suppress(OSError):
            namespace = os.readlink(f"/proc/{pid}/ns/mnt")
            if namespace != own:  # never the controller's own namespace
                by_namespace[namespace] = pid
    members: dict[int, Members] = {pid: [] for pid in by_namespace.values()}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            node = by_namespace.get(os.readlink(entry / "ns" / "mnt"))
            if node is not None:
                members[node].append((int(entry.name), process_start_time(int(entry.name))))
    return members


def signal_members(members: Members, sig: signal.Signals) -> None:
    """Signal the processes still alive as the ones recorded (a reused pid is left alone)."""
    for pid, started in members:
        if process_start_time(pid) == started:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)


def check_privileges() -> None:
    """The lab needs root (mounts, port 22); say clearly what is missing."""
    if not shutil.which("sshd") and not Path("/usr/sbin/sshd").exists():
        raise LabError("the lab needs OpenSSH's sshd: apt-get install openssh-server")
    if not shutil.which("unshare"):
        raise LabError("the lab needs unshare(1) from util-linux")
    if os.geteuid() == 0:
        return
    userns = Path("/proc/sys/kernel/unprivileged_userns_clone")
    has_userns = (not userns.exists() or userns.read_text().strip() == "1") and (
        Path("/proc/sys/user/max_user_namespaces").read_text().strip() not in ("", "0")
    )
    if has_userns:
        raise LabError(
            "the lab runs its nodes' sshd on port 22 of loopback addresses, which needs root; "
            "unprivileged user namespaces are available here but not supported yet: run `zetactl lab` as root"
        )
    raise LabError(
        "the lab needs root, or unprivileged user namespaces, and this machine has neither: "
        "run `zetactl lab` as root (or in a container/VM where you are root)"
    )


class Lab:
    """A lab directory: nodes/, the operator key, known_hosts, inventory.yml and lab.json."""

    def __init__(self, directory: Path, subnet: int | None = None) -> None:
        self.dir = directory.absolute()
        self._subnet = subnet
        self.state_file = self.dir / "lab.json"
        self.known_hosts = self.dir / "known_hosts"
        self.inventory = self.dir / "inventory.yml"
        self.operator_key = self.dir / "id_ed25519"

    # -- state -------------------------------------------------------------------------------
    def _state(self) -> dict[str, Any]:
        if not self.state_file.exists():
            return {"nodes": []}
        data: dict[str, Any] = json.loads(self.state_file.read_text())
        return data

    def nodes(self) -> list[LabNode]:
        return [LabNode(**entry) for entry in self._state()["nodes"]]

    @property
    def subnet(self) -> int:
        """Third octet of the first node's address; a second lab on the machine needs another one."""
        if self._subnet is not None:
            return self._subnet
        return int(self._state().get("subnet", DEFAULT_SUBNET))

    def node(self, name: str) -> LabNode:
        for node in self.nodes():
            if node.name == name:
                return node
        raise LabError(f"no lab node named {name!r} in {self.dir}")

    def hubs(self) -> list[LabHub]:
        return [LabHub(**entry) for entry in self._state().get("hubs", [])]

    def links(self) -> list[LabLink]:
        return [LabLink(**entry) for entry in self._state().get("links", [])]

    def link(self, name: str) -> LabLink | None:
        return next((link for link in self.links() if link.node == name), None)

    def _save(self, nodes: list[LabNode], hubs: list[LabHub] | None = None, links: list[LabLink] | None = None
              ) -> None:
        nodes = sorted(nodes, key=lambda n: n.name)
        names = {n.name for n in nodes}
        kept = [h for h in (self.hubs() if hubs is None else hubs) if h.node in names]
        kept_links = [k for k in (self.links() if links is None else links) if k.node in names]
        data = {"subnet": self.subnet, "nodes": [asdict(n) for n in nodes],
                "hubs": [asdict(h) for h in sorted(kept, key=lambda h: (h.node, h.service))],
                "links": [asdict(k) for k in sorted(kept_links, key=lambda k: k.node)]}
        write(self.state_file, json.dumps(data, indent=1) + "\n")

    # -- up / down ---------------------------------------------------------------------------
    def up(self, count: int, timeout: float = 60.0) -> list[LabNode]:
        """Make exactly `count` nodes run: start missing ones, stop extra ones. Idempotent."""
        if count < 1:
            raise LabError("a lab needs at least one node")
        if count > 2000:
            raise LabError("a lab has at most 2000 nodes")
        self._prepare_dir()
        operator_pub = self._operator_key()
        if not 1 <= self.subnet <= 250 - count // 250:
            raise LabError(f"--subnet must leave room for {count} nodes in 127.0.x.y, not {self.subnet}")
        wanted = [node_spec(i, count, self.subnet) for i in range(count)]
        wanted_names = {s.name for s in wanted}
        current = {n.name: n for n in self.nodes()}
        # Fresh nodes (`fresh`) are not part of the fleet `up` sizes: never stopped by it, never taken over.
        fresh = sorted(name for name, node in current.items() if node.group == FRESH_GROUP)
        clash = [name for name in fresh if name in wanted_names]
        if clash:
            raise LabError(f"lab up {count} needs the names of fresh nodes ({', '.join(clash)}): "
                           f"`zetactl lab down` first, or keep {len(current) - len(fresh)} nodes")
        extra = [node for name, node in current.items() if name not in wanted_names and name not in fresh]
        self._end_links([link for link in self.links() if link.node in {n.name for n in extra}])
        self._stop(extra)
        for node in extra:
            del current[node.name]
        to_start = [spec for spec in wanted if not (current.get(spec.name) and current[spec.name].alive())]
        self._check_free(to_start)
        started: list[tuple[NodeSpec, subprocess.Popen[bytes]]] = []
        for spec in to_start:
            if spec.name not in current:
                self._drop_stale_fresh(spec.name)
            started.append((spec, self._start(spec, operator_pub)))
        for spec, proc in started:
            current[spec.name] = LabNode(
                spec.name, spec.address, spec.group, proc.pid, process_start_time(proc.pid)
            )
        self._save(list(current.values()))
        self._wait_listening([current[s.name] for s, _ in started], timeout)
        self._restart_links(timeout)
        self._write_known_hosts(wanted)
        self._write_inventory(wanted)
        for spec in wanted:
            if spec.group == "admin":
                self.start_hubs(spec.name)
        return self.nodes()

    def fresh(self, count: int, bootstrap_pub: Path, timeout: float = 60.0) -> list[LabNode]:
        """Start `count` new nodes "fresh from the installer" after the existing ones (group "fresh").

        Each has a new ed25519 host key, kept out of known_hosts and inventory.yml (first contact is an explicit
        trust decision), also written to DIR/nodes/NAME/host_key.pub (the key as read on the console). root's
        only authorized key is `bootstrap_pub`, restricted to the forced command zeta-bootstrap."""
        if count < 1:
            raise LabError("lab fresh needs at least one node")
        try:
            public = ed25519_public_line(bootstrap_pub.read_bytes())
        except (OSError, ValueError) as exc:
            raise LabError(f"--bootstrap-key {bootstrap_pub}: {exc}") from None
        self._prepare_dir()
        current = self.nodes()
        first = max((node_index(n.name) for n in current), default=-1) + 1
        if first + count > 2000:
            raise LabError("a lab has at most 2000 nodes")
        if not 1 <= self.subnet <= 250 - (first + count - 1) // 250:
            raise LabError(f"subnet {self.subnet} has no room for {first + count} nodes in 127.0.x.y")
        specs = [replace(node_spec(i, i + 1, self.subnet), group=FRESH_GROUP) for i in range(first, first + count)]
        taken = {n.address for n in current} & {s.address for s in specs}
        if taken:
            raise LabError(f"addresses already used by lab nodes: {', '.join(sorted(taken))}")
        authorized = bootstrap_authorized_line(public)
        operator_pub = self._operator_key()
        started: list[LabNode] = []
        try:
            for spec in specs:
                node_dir = self.dir / "nodes" / spec.name
                if node_dir.exists():  # left by a node no longer in lab.json: this machine is reinstalled
                    shutil.rmtree(node_dir)
                host_pub = seed_node(node_dir, spec, operator_pub, authorized_keys=authorized)
                write(node_dir / "host_key.pub", host_pub + b" root@" + spec.name.encode() + b"\n")
                proc = self._start(spec, operator_pub)
                started.append(LabNode(spec.name, spec.address, spec.group, proc.pid, process_start_time(proc.pid)))
        finally:
            self._save(current + started)
        self._wait_listening(started, timeout)
        return started

    def down(self) -> int:
        """Stop every node this lab started, and its slow-link proxies (by pid and start time); returns how many
        nodes were running."""
        self._end_links(self.links())
        stopped = self._stop(self.nodes())
        self._save([], links=[])
        return stopped

    def stop_node(self, name: str) -> None:
        self._stop([self.node(name)])

    def start_node(self, name: str) -> None:
        """Start a stopped node again (a reboot: /run and /tmp are fresh, /etc /var /nix persist)."""
        old = self.node(name)
        if old.alive():
            return
        spec = NodeSpec(0, old.name, old.address, old.group)
        proc = self._start(spec, self._operator_key())
        new = LabNode(spec.name, spec.address, spec.group, proc.pid, process_start_time(proc.pid))
        self._save([n for n in self.nodes() if n.name != name] + [new])
        self._wait_listening([new], 20.0)
        if new.group == "admin":
            self.start_hubs(name)

    def reboot(self, name: str) -> None:
        """A reboot: stop the node, start it again. /run is fresh (new boot_id, the units of the profile's
        generation come up, /run/current-system and /run/booted-system = the profile's target), so a
        generation activated with `boot` takes effect."""
        self.stop_node(name)
        self.start_node(name)

    def insert_usb(self, name: str, blobs: list[Path], usb_id: str, passphrase_file: Path) -> Path:
        """Put a boot "USB" in a node: its blobs, its id and the passphrase (read at the next boot)."""
        usb = self.dir / "nodes" / self.node(name).name / "usb"
        usb.mkdir(parents=True, exist_ok=True, mode=0o700)
        for blob in blobs:
            shutil.copyfile(blob, usb / blob.name)
        write(usb / "usb-id", usb_id + "\n")
        write(usb / "passphrase", passphrase_file.read_bytes(), 0o600)
        return usb

    def freeze(self, name: str) -> None:
        """A hung machine: every process of the node stops (TCP still connects, nothing answers)."""
        self._signal_all(self.node(name), signal.SIGSTOP)

    def thaw(self, name: str) -> None:
        self._signal_all(self.node(name), signal.SIGCONT)

    def _signal_all(self, node: LabNode, sig: signal.Signals) -> None:
        if node.alive():
            signal_members(namespace_members([node.pid]).get(node.pid, []), sig)

    def rekey(self, name: str) -> str:
        """Give a node a new host key (a reinstalled machine) and restart it; known_hosts is NOT updated."""
        self._stop([self.node(name)])
        private, public = new_host_key()
        ssh_dir = self.dir / "nodes" / name / "upper" / "etc" / "ssh"
        write(ssh_dir / "ssh_host_ed25519_key", private, 0o600)
        write(ssh_dir / "ssh_host_ed25519_key.pub", public + b" root@" + name.encode() + b"\n")
        if (self.dir / "nodes" / name / "host_key.pub").exists():  # a fresh node: the console shows the new key
            write(self.dir / "nodes" / name / "host_key.pub", public + b" root@" + name.encode() + b"\n")
        self.start_node(name)
        return public.decode()

    def fill_disk(self, name: str, path: str = "/var") -> None:
        """Fault: a full disk at PATH on the node. PATH gets its own small filesystem (tmpfs), filled to its
        last block: `df` shows 0 available and writes fail with ENOSPC. What PATH held is hidden until
        `unfill_disk`."""
        self._in_node(name, FILL_SCRIPT, path)

    def unfill_disk(self, name: str, path: str = "/var") -> None:
        self._in_node(name, Sh('umount "$1"'), path)

    def _in_node(self, name: str, script: Sh, path: str) -> None:
        if not path.startswith("/") or ".." in path.split("/"):
            raise LabError(f"{path!r}: give an absolute path on the node")
        self._sh_in_node(name, script, path)

    def _sh_in_node(self, name: str, script: Sh, *args: str) -> None:
        """Run a sh script in the node's mount and UTS namespaces ($1... = args)."""
        node = self.node(name)
        if not node.alive():
            raise LabError(f"{name} is not running")
        done = subprocess.run(["nsenter", "-t", str(node.pid), "-m", "-u", "sh", "-c", script.text, "sh", *args],
                              capture_output=True, text=True, cwd="/")
        if done.returncode != 0:
            raise LabError(f"{name}: {done.stderr.strip() or f'exit {done.returncode}'}")

    # -- clock skew ----------------------------------------------------------------------------
    def skew(self, name: str, seconds: float) -> None:
        """Fault: the node's clock is off by SECONDS (negative: behind); 0 ends it.

        The realtime clock cannot be namespaced, so every dynamically linked process of that node loads
        libfaketime: the node's own /etc (its overlay) gets /etc/ld.so.preload naming the library and
        /etc/faketimerc holding the offset, and its /dev/shm goes read-only (SKEW_SHM). New processes see the
        offset at once, running ones within libfaketime's cache interval (10 s). The controller and the other
        nodes are untouched. It lasts across reboots of the node (the files are in its /etc), until
        `skew(name, 0)`."""
        node = self.node(name)
        if not math.isfinite(seconds) or abs(seconds) > MAX_SKEW:
            raise LabError(f"a clock skew is at most {MAX_SKEW} seconds either way, not {seconds:g}")
        etc = self._etc(node)
        preload, offset = etc / "ld.so.preload", etc / "faketimerc"
        try:
            lines = preload.read_text().splitlines() if preload.exists() else []
        except OSError as exc:
            raise LabError(f"{name}: {exc}") from None
        others = [line for line in lines if line.strip() and "/faketime/libfaketime" not in line]
        if seconds == 0:
            if others:
                write(preload, "\n".join(others) + "\n")
            else:
                preload.unlink(missing_ok=True)
            offset.unlink(missing_ok=True)
            if node.alive() and self._shm_is_the_nodes(node):
                self._sh_in_node(name, SKEW_SHM_SCRIPT, "rw")
            return
        library = libfaketime()
        if library is None:
            raise LabError("a clock skew needs libfaketime: apt-get install faketime")
        if node.alive():
            if not self._shm_is_the_nodes(node):
                raise LabError(f"{name} was started by an older zetactl (no /dev/shm of its own): "
                               f"`zetactl lab reboot {name}` first")
            self._sh_in_node(name, SKEW_SHM_SCRIPT, "ro")
        write(offset, skew_text(seconds) + "\n")
        write(preload, "\n".join([*others, library]) + "\n")

    def skew_of(self, name: str) -> float:
        """The node's clock offset in seconds (0: not skewed)."""
        etc = self._etc(self.node(name))
        try:
            if "/faketime/libfaketime" not in (etc / "ld.so.preload").read_text():
                return 0.0
            return float((etc / "faketimerc").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return 0.0

    def _etc(self, node: LabNode) -> Path:
        """The node's /etc: through its mount namespace while it runs, else its overlay's upper directory."""
        return node.path("/etc") if node.alive() else self.dir / "nodes" / node.name / "upper" / "etc"

    @staticmethod
    def _shm_is_the_nodes(node: LabNode) -> bool:
        """Whether the node's /dev/shm is its own tmpfs (lab/scripts/boot.sh), never the machine's."""
        try:
            mounts = Path(f"/proc/{node.pid}/mountinfo").read_text().splitlines()
        except OSError:
            return False
        shm = [line for line in mounts if line.split()[4:5] == ["/dev/shm"]]
        return bool(shm) and shm[-1].split(" - ", 1)[-1].split()[1:2] == [SKEW_SHM]

    # -- slow links ----------------------------------------------------------------------------
    def slow(self, name: str, delay_ms: float, rate_kib: float | None = None, port: int = SLOW_LINK_PORT,
             timeout: float = 10.0) -> LabLink:
        """Fault: a slow link to the node. A delaying proxy (zetactl/lab/slowlink.py, its own process) listens on
        the node's address at PORT and relays to its sshd on port 22, adding DELAY_MS to every chunk in each
        direction and, with RATE_KIB, capping each direction at that many KiB/s.

        While the link is slow, DIR/inventory.yml gives the host `ansible_port: PORT`, and DIR/known_hosts pins
        `[ADDRESS]:PORT` to the key pinned for ADDRESS (the same sshd, so the same key; nothing is pinned when
        ADDRESS is not). Port 22 stays direct. Slowing a slowed node changes its delay and rate in place (open
        connections stay up)."""
        node = self.node(name)
        if not (math.isfinite(delay_ms) and 0 <= delay_ms <= MAX_DELAY_MS):
            raise LabError(f"--delay is milliseconds from 0 to {MAX_DELAY_MS}, not {delay_ms:g}")
        if rate_kib is not None and not (math.isfinite(rate_kib) and rate_kib > 0):
            raise LabError(f"--rate is KiB per second, more than 0, not {rate_kib:g}")
        if not 1 <= port <= 65535 or port in (2, 22):
            raise LabError(f"--port {port}: choose a free port other than the node's ssh ports (22, 2)")
        node_dir = self.dir / "nodes" / name
        config = node_dir / "slowlink.json"
        links = [link for link in self.links() if link.node != name]
        old = self.link(name)
        write(config, json.dumps({"delay_ms": delay_ms, "rate_kib": rate_kib}) + "\n")
        if old is not None and old.alive() and old.port == port:
            signal_members([(old.pid, old.started)], signal.SIGHUP)
            link = replace(old, delay_ms=delay_ms, rate_kib=rate_kib)
        else:
            if old is not None:
                self._end_links([old])
            link = self._start_link(node, port, delay_ms, rate_kib, config, timeout)
        self._save(self.nodes(), links=[*links, link])
        self._point_at(node, port, old.port if old else None)
        return link

    def fast(self, name: str) -> bool:
        """End the node's slow link: its proxy stops (by pid), inventory.yml and known_hosts point at port 22
        again. True when there was one."""
        node = self.node(name)
        old = self.link(name)
        if old is None:
            return False
        self._end_links([old])
        self._save(self.nodes(), links=[link for link in self.links() if link.node != name])
        self._point_at(node, None, old.port)
        return True

    def _start_link(self, node: LabNode, port: int, delay_ms: float, rate_kib: float | None, config: Path,
                    timeout: float) -> LabLink:
        node_dir = self.dir / "nodes" / node.name
        ready = node_dir / "slowlink.ready"
        ready.unlink(missing_ok=True)
        log_path = node_dir / "slowlink.log"
        log = open(log_path, "ab")  # noqa: SIM115 - handed to the child
        try:
            proc = subprocess.Popen(
                [sys.executable, "-m", "zetactl.lab.slowlink", "--listen", f"{node.address}:{port}",
                 "--to", f"{node.address}:22", "--config", str(config), "--ready", str(ready)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True, cwd="/",
            )
        finally:
            log.close()
        link = LabLink(node.name, node.address, port, delay_ms, rate_kib, proc.pid, process_start_time(proc.pid))
        deadline = time.monotonic() + timeout
        while not ready.exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                self._end_links([link])
                proc.poll()
                tail = log_path.read_text(errors="replace").strip().splitlines()[-3:]
                raise LabError(f"the slow link for {node.name} did not start on {node.address}:{port}:\n  "
                               + "\n  ".join(tail))
            time.sleep(0.02)
        return link

    def _restart_links(self, timeout: float) -> None:
        """Start again the slow links whose proxy is gone (say, after the machine restarted): same port, delay
        and rate."""
        links = self.links()
        if all(link.alive() for link in links):
            return
        nodes = {node.name: node for node in self.nodes()}
        restarted = []
        for link in links:
            if not link.alive() and link.node in nodes:
                config = self.dir / "nodes" / link.node / "slowlink.json"
                write(config, json.dumps({"delay_ms": link.delay_ms, "rate_kib": link.rate_kib}) + "\n")
                link = self._start_link(nodes[link.node], link.port, link.delay_ms, link.rate_kib, config,
                                        timeout)
            restarted.append(link)
        self._save(self.nodes(), links=restarted)

    def _end_links(self, links: list[LabLink]) -> None:
        """Stop slow-link proxies like the lab's other processes: by pid and start time, TERM then KILL."""
        running = [link for link in links if link.alive()]
        for link in running:
            signal_members([(link.pid, link.started)], signal.SIGTERM)
        deadline = time.monotonic() + 5
        while any(link.alive() for link in running) and time.monotonic() < deadline:
            time.sleep(0.02)
        for link in running:
            signal_members([(link.pid, link.started)], signal.SIGKILL)

    def _point_at(self, node: LabNode, port: int | None, old_port: int | None) -> None:
        """inventory.yml and known_hosts for a node behind its slow link on PORT (None: back to port 22)."""
        if port == old_port:
            return
        lines = self.known_hosts.read_text().splitlines() if self.known_hosts.exists() else []
        drop = {f"[{node.address}]:{p}" for p in (port, old_port) if p is not None}
        kept = [line for line in lines if not known_hosts_names(line) & drop]
        if port is not None:  # the same sshd: exactly the keys pinned for its port 22
            kept += [f"[{node.address}]:{port} {' '.join(line.split()[1:3])}" for line in lines
                     if node.address in known_hosts_names(line)]
        if kept != lines:
            write(self.known_hosts, "".join(f"{line}\n" for line in kept))
        if not self.inventory.exists():
            return
        text = self.inventory.read_text()
        document = yaml.safe_load(text)
        try:
            hosts = document["all"]["children"]["lab"]["hosts"]
        except (KeyError, TypeError):
            return
        if not isinstance(hosts, dict) or node.name not in hosts:
            return  # a fresh node: not in the inventory
        entry = hosts[node.name] or {}
        if port is None:
            entry.pop("ansible_port", None)
        else:
            entry["ansible_port"] = port
        hosts[node.name] = entry
        header = "".join(f"{line}\n" for line in itertools.takewhile(lambda ln: ln.startswith("#"),
                                                                     text.splitlines()))
        write(self.inventory, header + yaml.safe_dump(document, sort_keys=False))

    # -- hub services --------------------------------------------------------------------------
    def start_hubs(self, name: str, services: Iterable[str] | None = None, timeout: float = 20.0) -> list[LabHub]:
        """Start the lab hub services (all of LAB_HUBS, or the named ones) on admin node NAME, like their
        units: each process runs in the node's namespaces, reads /var/lib/zeta/hubs/SERVICE/registry, and
        `systemctl is-active zeta-hub-SERVICE` says active. Already running ones are left alone."""
        node = self.node(name)
        if not node.alive():
            raise LabError(f"{name} is not running")
        known = {h["name"]: h for h in LAB_HUBS}
        wanted = list(services) if services is not None else list(known)
        unknown = [s for s in wanted if s not in known]
        if unknown:
            raise LabError(f"no lab hub service {', '.join(unknown)} (the lab has {', '.join(known)})")
        hubs = {(h.node, h.service): h for h in self.hubs()}
        started: list[LabHub] = []
        for service in wanted:
            running = hubs.get((name, service))
            if running and running.alive():
                continue
            port = int(str(known[service]["port"]))
            registry = HUB_REGISTRY.format(service=service)
            log = open(self.dir / "nodes" / name / f"hub-{service}.log", "ab")  # noqa: SIM115 - handed to the child
            try:
                proc = subprocess.Popen(
                    # the node sees zetactl/lab/bin as /usr/local/sbin (a checkout under /tmp is hidden there)
                    ["nsenter", "-t", str(node.pid), "-m", "-u", "--wd=/", "/usr/bin/python3",
                     "/usr/local/sbin/zeta-lab-hub", "--service", service,
                     "--listen", f"{node.address}:{port}", "--registry", registry],
                    stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True, cwd="/",
                )
            finally:
                log.close()
            hub = LabHub(name, service, node.address, port, proc.pid, process_start_time(proc.pid))
            hubs[(name, service)] = hub
            started.append(hub)
            self._unit_state(node, f"zeta-hub-{service}.service", "active")
        self._save(self.nodes(), list(hubs.values()))
        deadline = time.monotonic() + timeout
        for hub in started:
            while True:
                try:
                    with socket.create_connection((hub.address, hub.port), timeout=0.2):
                        break
                except OSError:
                    if not hub.alive() or time.monotonic() > deadline:
                        raise LabError(f"lab hub {hub.service} on {name} did not start (see "
                                       f"{self.dir / 'nodes' / name / f'hub-{hub.service}.log'})") from None
                    time.sleep(0.05)
        return started

    def stop_hub(self, name: str, service: str) -> bool:
        """A hub service goes down (its unit inactive); True when it was running."""
        node = self.node(name)
        hubs = self.hubs()
        hub = next((h for h in hubs if h.node == name and h.service == service), None)
        if hub is None:
            raise LabError(f"no lab hub {service!r} on {name}")
        was = hub.alive()
        signal_members([(hub.pid, hub.started)], signal.SIGTERM)
        deadline = time.monotonic() + 5
        while hub.alive() and time.monotonic() < deadline:
            time.sleep(0.02)
        signal_members([(hub.pid, hub.started)], signal.SIGKILL)
        if node.alive():
            self._unit_state(node, f"zeta-hub-{service}.service", "inactive")
        return was

    @staticmethod
    def _unit_state(node: LabNode, unit: str, state: str) -> None:
        with contextlib.suppress(OSError):
            write(node.path(f"/run/zeta-lab/units/{unit}"), state + "\n")

    # -- internals ---------------------------------------------------------------------------
    def _prepare_dir(self) -> None:
        check_privileges()
        if str(self.dir).startswith(FORBIDDEN_ROOTS):
            raise LabError(f"the lab directory cannot live under {', '.join(FORBIDDEN_ROOTS)}: {self.dir}")
        self.dir.mkdir(parents=True, exist_ok=True)

    def _drop_stale_fresh(self, name: str) -> None:
        """A fresh node's files left after `down` are not reused as a fleet node's (they hold only the
        bootstrap key): the node is seeded again."""
        node_dir = self.dir / "nodes" / name
        if (node_dir / "host_key.pub").exists():
            shutil.rmtree(node_dir)

    def _operator_key(self) -> bytes:
        pub_path = self.operator_key.with_suffix(".pub")
        if not self.operator_key.exists():
            private, public = new_host_key()
            write(self.operator_key, private, 0o600)
            write(pub_path, public + b" zetactl-lab-operator\n")
        return pub_path.read_bytes().split(b" zetactl-lab-operator")[0].strip()

    def _start(self, spec: NodeSpec, operator_pub: bytes) -> subprocess.Popen[bytes]:
        node_dir = self.dir / "nodes" / spec.name
        if not (node_dir / "upper").exists():
            seed_node(node_dir, spec, operator_pub)
        log = open(node_dir / "sshd.log", "ab")  # noqa: SIM115 - handed to the child
        try:
            return subprocess.Popen(
                ["unshare", "--mount", "--uts", "--propagation", "private",
                 "sh", "-c", boot_script().text, "boot", str(node_dir), spec.name, str(BIN_DIR), sys.executable],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True, cwd="/",
                env=BOOT_ENV,  # a machine boots with its own environment, not its operator's (ZETACTL_LOG_FILE...)
            )
        finally:
            log.close()

    def _stop(self, nodes: list[LabNode]) -> int:
        """Stop nodes like machines going down: each sshd, then every process in its namespace."""
        running = [n for n in nodes if n.alive()]
        members = namespace_members(n.pid for n in running)
        for node in running:
            signal_members([(node.pid, node.started)], signal.SIGCONT)
            signal_members([(node.pid, node.started)], signal.SIGTERM)
        deadline = time.monotonic() + 5
        while any(n.alive() for n in running) and time.monotonic() < deadline:
            time.sleep(0.02)
        for node in running:  # sessions (sshd forks them into new sessions) and their commands
            signal_members(members.get(node.pid, []), signal.SIGKILL)
        return len(running)

    @staticmethod
    def _check_free(specs: list[NodeSpec]) -> None:
        """Refuse to start a node on an address where something already listens (another lab on the same
        subnet): its sshd would fail to bind, and the wait for it would connect to the other lab's node."""
        for spec in specs:
            try:
                with socket.create_connection((spec.address, 22), timeout=0.5):
                    pass
            except OSError:
                continue
            raise LabError(f"{spec.address}:22 is already in use (another lab on this subnet?): stop it with "
                           "`zetactl lab down --dir DIR`, or choose another --subnet")

    def _wait_listening(self, nodes: list[LabNode], timeout: float) -> None:
        pending = {n.name: n for n in nodes}
        deadline = time.monotonic() + timeout
        while pending:
            for name, node in list(pending.items()):
                if not node.alive():
                    log = self.dir / "nodes" / name / "sshd.log"
                    tail = log.read_text(errors="replace").strip().splitlines()[-5:] if log.exists() else []
                    raise LabError(f"lab node {name} exited while starting:\n  " + "\n  ".join(tail))
                try:
                    with socket.create_connection((node.address, self._ssh_port(name)), timeout=0.2):
                        del pending[name]
                except OSError:
                    pass
            if pending and time.monotonic() > deadline:
                raise LabError(f"lab nodes not listening after {timeout:.0f}s: {', '.join(sorted(pending))}")
            if pending:
                time.sleep(0.05)

    def _ssh_port(self, name: str) -> int:
        """22, or 2 while the node's booted generation has `# zeta-lab: break-network` (see docs/lab.md)."""
        config = self.dir / "nodes" / name / "upper" / "etc" / "ssh" / "sshd_config"
        with contextlib.suppress(OSError):
            for line in config.read_text().splitlines():
                if line.startswith("ListenAddress ") and line.rsplit(":", 1)[-1].isdigit():
                    return int(line.rsplit(":", 1)[-1])
        return 22

    def _write_known_hosts(self, specs: list[NodeSpec]) -> None:
        ports = {link.node: link.port for link in self.links()}
        lines = []
        for spec in specs:
            pub = (self.dir / "nodes" / spec.name / "upper/etc/ssh/ssh_host_ed25519_key.pub").read_text()
            key_type, key = pub.split()[:2]
            lines.append(f"{spec.address} {key_type} {key}\n")
            if spec.name in ports:  # the same sshd behind its slow link: the same key
                lines.append(f"[{spec.address}]:{ports[spec.name]} {key_type} {key}\n")
        write(self.known_hosts, "".join(lines))

    def _write_inventory(self, specs: list[NodeSpec]) -> None:
        hosts: dict[str, dict[str, Any]] = {
            s.name: {"ansible_host": s.address, "zeta_role": s.group.replace("_", "-")} for s in specs}
        for link in self.links():
            if link.node in hosts:
                hosts[link.node]["ansible_port"] = link.port
        groups: dict[str, dict[str, Any]] = {}
        for spec in specs:
            groups.setdefault(spec.group, {"hosts": {}})["hosts"][spec.name] = None
        if "admin" in groups:
            groups["admin"]["vars"] = {"zeta_hubs": [dict(h) for h in LAB_HUBS]}
        inventory = {
            "all": {
                "vars": {
                    "ansible_user": "root",
                    "ansible_port": 22,
                    "ansible_ssh_private_key_file": str(self.operator_key),
                    "zeta_known_hosts": str(self.known_hosts),
                },
                "children": {"lab": {"hosts": hosts, "children": {g: groups[g] for g in sorted(groups)}}},
            }
        }
        header = "# Written by `zetactl lab up`: the lab fleet, in Ansible's YAML inventory shape.\n"
        write(self.inventory, header + yaml.safe_dump(inventory, sort_keys=False))
