"""What one lab node is: its name, address, groups, and the files seeded before its sshd starts."""

from __future__ import annotations

import hashlib
import os
import time
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

NIXOS_VERSION = "25.05.20250102.6df2492"
NIXOS_CODENAME = "Warbler"
# The trees each node sees copy-on-write (overlayfs over the machine's own), so a node can write
# anywhere under them without touching the machine. /run and /tmp are per-node tmpfs.
OVERLAID = ("etc", "var", "nix")
TMPFS_SIZE = "64m"
NIX_BASE32 = "0123456789abcdfghijklmnpqrsvwxyz"

# Units every lab node knows; agents and k3s only where the role has them.
BASE_UNITS = {"sshd.service": "OpenSSH Daemon", "nix-daemon.service": "Nix Daemon"}
ROLE_UNITS = {
    "control_plane": {
        "k3s.service": "Lightweight Kubernetes",
        "zeta-otto.service": "Zeta agent otto",
        "zeta-lior.service": "Zeta agent lior",
        "zeta-vera.service": "Zeta agent vera",
    },
    "worker_gpu": {"k3s.service": "Lightweight Kubernetes"},
    "admin": {"zeta-hub-embedder.service": "Zeta hub: embedder", "zeta-hub-voice.service": "Zeta hub: voice"},
    "tenants": {},
}


@dataclass(frozen=True)
class NodeSpec:
    index: int
    name: str
    address: str
    group: str


DEFAULT_SUBNET = 10


def node_spec(index: int, total: int, subnet: int = DEFAULT_SUBNET) -> NodeSpec:
    """Node `index` (0-based) of a lab of `total`: stable name, address 127.0.<subnet+>.<n>, role group."""
    name = f"lab-{index + 1:03d}"
    address = f"127.0.{subnet + index // 250}.{1 + index % 250}"
    return NodeSpec(index, name, address, node_group(index, total))


def node_group(index: int, total: int) -> str:
    if index < min(3, total):
        return "control_plane"
    if index == 3 and total >= 5:
        return "admin"
    return "worker_gpu" if index % 2 == 0 else "tenants"


def store_hash(seed: str) -> str:
    digest = hashlib.sha256(seed.encode()).digest()
    return "".join(NIX_BASE32[b % 32] for b in digest[:32])


def new_host_key() -> tuple[bytes, bytes]:
    """A fresh ed25519 host key as (OpenSSH private key, public key line)."""
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
    )
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    return private, public


def write(path: Path, data: str | bytes, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data.encode() if isinstance(data, str) else data)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def sshd_config(address: str) -> str:
    return f"""# zetactl lab node: written by `zetactl lab up`
ListenAddress {address}:22
HostKey /etc/ssh/ssh_host_ed25519_key
AuthorizedKeysFile /etc/ssh/authorized_keys.d/%u
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
UseDNS no
PermitRootLogin prohibit-password
StrictModes no
MaxStartups 1000:30:2000
MaxSessions 256
PidFile none
PrintMotd no
Subsystem sftp internal-sftp
"""


def unit_file(description: str) -> str:
    return f"""[Unit]
Description={description}

[Service]
ExecStart=/bin/sleep infinity
Restart=always

[Install]
WantedBy=multi-user.target
"""


def seed_node(node_dir: Path, spec: NodeSpec, operator_pubkey: bytes) -> bytes:
    """Lay out a new node's private trees before its first start; returns its public host key line."""
    upper = node_dir / "upper"
    for tree in OVERLAID:
        (upper / tree).mkdir(parents=True, exist_ok=True)
        (node_dir / "work" / tree).mkdir(parents=True, exist_ok=True)
    private, public = new_host_key()
    etc = upper / "etc"
    write(etc / "ssh" / "ssh_host_ed25519_key", private, 0o600)
    write(etc / "ssh" / "ssh_host_ed25519_key.pub", public + b" root@" + spec.name.encode() + b"\n")
    write(etc / "ssh" / "sshd_config", sshd_config(spec.address))
    write(etc / "ssh" / "authorized_keys.d" / "root", operator_pubkey.rstrip() + b" zetactl-lab-operator\n")
    write(etc / "hostname", spec.name + "\n")
    write(
        etc / "os-release",
        f'NAME=NixOS\nID=nixos\nVERSION="{NIXOS_VERSION[:5]} ({NIXOS_CODENAME})"\n'
        f"VERSION_ID={NIXOS_VERSION[:5]}\nPRETTY_NAME=\"NixOS {NIXOS_VERSION[:5]} ({NIXOS_CODENAME})\"\n",
    )
    units = {**BASE_UNITS, **ROLE_UNITS[spec.group]}
    for unit, description in units.items():
        write(etc / "systemd" / "system" / unit, unit_file(description))
        wants = etc / "systemd" / "system" / "multi-user.target.wants"
        wants.mkdir(parents=True, exist_ok=True)
        link = wants / unit
        if not link.is_symlink():
            link.symlink_to(f"/etc/systemd/system/{unit}")
    seed_generation(upper / "nix", spec.name, 1)
    (upper / "var" / "lib" / "zeta" / "state").mkdir(parents=True, exist_ok=True)
    return public


def seed_generation(nix_upper: Path, hostname: str, generation: int) -> None:
    """A NixOS system generation: store path with nixos-version, kernel, initrd; profile links."""
    toplevel_name = f"{store_hash(f'{hostname}-{generation}')}-nixos-system-{hostname}-{NIXOS_VERSION}"
    toplevel = nix_upper / "store" / toplevel_name
    write(toplevel / "nixos-version", NIXOS_VERSION)
    kernel = nix_upper / "store" / f"{store_hash('linux-6.6.68')}-linux-6.6.68"
    write(kernel / "bzImage", "lab kernel\n")
    write(kernel / "initrd", "lab initrd\n")
    for link, target in (("kernel", kernel / "bzImage"), ("initrd", kernel / "initrd")):
        path = toplevel / link
        if not path.is_symlink():
            path.symlink_to("/nix/store/" + target.relative_to(nix_upper / "store").as_posix())
    profiles = nix_upper / "var" / "nix" / "profiles"
    profiles.mkdir(parents=True, exist_ok=True)
    gen_link = profiles / f"system-{generation}-link"
    if not gen_link.is_symlink():
        gen_link.symlink_to(f"/nix/store/{toplevel_name}")
        stamp = time.time()
        os.utime(gen_link, (stamp, stamp), follow_symlinks=False)
    system = profiles / "system"
    if system.is_symlink():
        system.unlink()
    system.symlink_to(f"system-{generation}-link")


# Runs as the node's first process inside `unshare --mount --uts`, then becomes its sshd.
BOOT_SCRIPT = r"""
set -eu
node_dir="$1"; name="$2"; bin_dir="$3"
hostname "$name"
# Bind what the node needs from the machine before /run and /tmp are covered by fresh tmpfs.
mount --bind "$bin_dir" /usr/local/sbin
mount -o remount,bind,ro /usr/local/sbin
mount -t tmpfs -o size=%(size)s,mode=0755 tmpfs /run
mkdir -p /run/zeta-lab/node
mount --bind "$node_dir" /run/zeta-lab/node
N=/run/zeta-lab/node
for tree in %(trees)s; do
  [ -d "/$tree" ] || continue
  mount -t overlay overlay -o "lowerdir=/$tree,upperdir=$N/upper/$tree,workdir=$N/work/$tree" "/$tree"
done
mount -t tmpfs -o size=%(size)s,mode=1777 tmpfs /tmp
: > /run/zeta-lab/empty
[ -e /root/.bashrc ] && mount --bind /run/zeta-lab/empty /root/.bashrc
[ -e /root/.profile ] && mount --bind /run/zeta-lab/empty /root/.profile
cat /proc/sys/kernel/random/uuid > /run/zeta-lab/boot_id
mount --bind /run/zeta-lab/boot_id /proc/sys/kernel/random/boot_id
mkdir -p /run/sshd /run/zeta-lab/units /run/nixos
chmod 0755 /run/sshd
system=$(readlink -f /nix/var/nix/profiles/system)
ln -sfn "$system" /run/current-system
ln -sfn "$system" /run/booted-system
for link in /etc/systemd/system/*.wants/*; do
  [ -e "$link" ] || [ -L "$link" ] || continue
  echo active > "/run/zeta-lab/units/${link##*/}"
done
exec /usr/sbin/sshd -D -e -f /etc/ssh/sshd_config
""".replace("%(size)s", TMPFS_SIZE).replace("%(trees)s", " ".join(OVERLAID))
