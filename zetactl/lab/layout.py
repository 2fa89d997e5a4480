"""What one lab node is: its name, address, groups, and the files seeded before its sshd starts."""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from zetactl.fileio import write_atomic
from zetactl.remote import Sh, script

# The trees each node sees copy-on-write (overlayfs over the machine's own), so a node can write
# anywhere under them without touching the machine. /run and /tmp are per-node tmpfs.
OVERLAID = ("etc", "var", "nix")
TMPFS_SIZE = "64m"
BIN_DIR = Path(__file__).parent / "bin"

# The zetactl-managed modules each role's nodes are seeded with, in /etc/nixos/zeta/ (imported by the folder's
# default.nix, itself imported by configuration.nix); see role_modules().
ROLE_MODULES = {
    "control_plane": ("k3s.nix", "zeta-agents.nix"),
    "worker_gpu": ("k3s.nix",),
    "admin": ("zeta-hubs.nix",),
    "tenants": (),
    "fresh": (),  # `zetactl lab fresh`: just installed from the zeta USB installer, not registered yet
}

# The group of "fresh from the installer" nodes (`Lab.fresh`): not in known_hosts nor in inventory.yml, root
# reachable only with the bootstrap key, whose forced command is zetactl/lab/bin/zeta-bootstrap.
FRESH_GROUP = "fresh"
BOOTSTRAP_COMMAND = "/usr/local/sbin/zeta-bootstrap"


@dataclass(frozen=True)
class NodeSpec:
    index: int
    name: str
    address: str
    group: str


DEFAULT_SUBNET = 10

# The lab's hub services on its admin node (zetactl/lab/bin/zeta-lab-hub, a stand-in implementing the hub
# contract of DESIGN.md section 10), written into inventory.yml as the admin group's `zeta_hubs`. The
# per-tenant footprint is what `zetactl tenant add` checks against the node's real free disk and memory.
LAB_HUBS: tuple[dict[str, Any], ...] = (
    {"name": "embedder", "port": 8701, "memory_max": "2G", "tenant_disk": "16M", "tenant_memory": "16M"},
    {"name": "voice", "port": 8702, "memory_max": "1G", "tenant_disk": "8M", "tenant_memory": "8M"},
)
HUB_REGISTRY = "/var/lib/zeta/hubs/{service}/registry"


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


def _load_nixlab() -> ModuleType:
    """The NixOS layer the nodes run (zetactl/lab/bin/_nixlab.py, stdlib only), loaded from its file so the
    controller builds generation 1 with exactly the code a node's `nixos-rebuild` uses."""
    name = "zetactl_lab_nixlab"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, BIN_DIR / "_nixlab.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


nixlab = _load_nixlab()
NIXOS_VERSION: str = nixlab.NIXOS_VERSION
NIXOS_CODENAME: str = nixlab.NIXOS_CODENAME


def store_hash(seed: str) -> str:
    return str(nixlab.store_hash(seed))


def new_host_key() -> tuple[bytes, bytes]:
    """A fresh ed25519 host key as (OpenSSH private key, public key line)."""
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
    )
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    return private, public


def ed25519_public_line(text: bytes) -> bytes:
    """`ssh-ed25519 BASE64` from an OpenSSH public key line (comment dropped); ValueError unless ed25519."""
    try:
        key = serialization.load_ssh_public_key(text.strip())
    except (ValueError, TypeError, IndexError, UnsupportedAlgorithm):  # (a private key, say: never quoted)
        raise ValueError("not an OpenSSH public key line (give the .pub file)") from None
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError("not an ssh-ed25519 public key")
    return key.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)


def bootstrap_authorized_line(public: bytes) -> bytes:
    """root's only authorized_keys line on a fresh node: the bootstrap key, restricted to zeta-bootstrap."""
    return b'restrict,command="' + BOOTSTRAP_COMMAND.encode() + b'" ' + public.strip() + b" zeta-bootstrap\n"


def fingerprint(public_line: str | bytes) -> str:
    """The key's SHA256 fingerprint as `ssh-keygen -lf` prints it: SHA256:<unpadded base64>."""
    text = public_line.decode() if isinstance(public_line, bytes) else public_line
    blob = base64.b64decode(text.split()[1])
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


def write(path: Path, data: str | bytes, mode: int = 0o644) -> None:
    write_atomic(path, data, mode, folder_mode=0o755)  # a node's own files: as a machine has them


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


def seed_node(node_dir: Path, spec: NodeSpec, operator_pubkey: bytes, authorized_keys: bytes | None = None) -> bytes:
    """Lay out a new node's private trees before its first start; returns its public host key line.
    root's authorized_keys is the operator key, or exactly `authorized_keys` when given (fresh nodes)."""
    upper = node_dir / "upper"
    for tree in OVERLAID:
        (upper / tree).mkdir(parents=True, exist_ok=True)
        (node_dir / "work" / tree).mkdir(parents=True, exist_ok=True)
    private, public = new_host_key()
    etc = upper / "etc"
    write(etc / "ssh" / "ssh_host_ed25519_key", private, 0o600)
    write(etc / "ssh" / "ssh_host_ed25519_key.pub", public + b" root@" + spec.name.encode() + b"\n")
    write(etc / "ssh" / "sshd_config", sshd_config(spec.address))
    if authorized_keys is None:
        authorized_keys = operator_pubkey.rstrip() + b" zetactl-lab-operator\n"
    write(etc / "ssh" / "authorized_keys.d" / "root", authorized_keys)
    write(etc / "hostname", spec.name + "\n")
    write(
        etc / "os-release",
        f'NAME=NixOS\nID=nixos\nVERSION="{NIXOS_VERSION[:5]} ({NIXOS_CODENAME})"\n'
        f"VERSION_ID={NIXOS_VERSION[:5]}\nPRETTY_NAME=\"NixOS {NIXOS_VERSION[:5]} ({NIXOS_CODENAME})\"\n",
    )
    for rel, text in role_modules(spec).items():
        write(etc / "nixos" / rel, text)
    seed_generation(upper, spec.name)
    (upper / "var" / "lib" / "zeta" / "state").mkdir(parents=True, exist_ok=True)
    return public


def seed_generation(upper: Path, hostname: str) -> str:
    """Generation 1: exactly what `nixos-rebuild` builds from the seeded /etc/nixos, its units installed in
    /etc/systemd/system and the system profile pointing at it. Returns the toplevel store path."""
    store = upper / "nix" / "store"
    store.mkdir(parents=True, exist_ok=True)
    toplevel = str(nixlab.build_system(upper / "etc" / "nixos", store, hostname))
    nixlab.install_units(toplevel, upper / "etc" / "systemd" / "system", store)
    profiles = upper / "nix" / "var" / "nix" / "profiles"
    profiles.mkdir(parents=True, exist_ok=True)
    nixlab.set_profile(str(profiles / "system"), toplevel)
    return toplevel


def role_modules(spec: NodeSpec) -> dict[str, str]:
    """The /etc/nixos files of a new node (paths relative to /etc/nixos): configuration.nix,
    hardware-configuration.nix, zeta/default.nix (imports every module of zeta/) and its role's zeta/ modules."""
    modules = {"configuration.nix": CONFIGURATION_NIX.replace("@hostname@", spec.name),
               "hardware-configuration.nix": HARDWARE_CONFIGURATION_NIX,
               "zeta/default.nix": ZETA_DEFAULT_NIX}
    k3s_role = "server" if spec.group == "control_plane" else "agent"
    for name in ROLE_MODULES[spec.group]:
        modules[f"zeta/{name}"] = MODULES[name].replace("@k3s_role@", k3s_role)
    return modules


CONFIGURATION_NIX = """# @hostname@: NixOS configuration (seeded by `zetactl lab up`).
{ config, lib, pkgs, ... }:

{
  imports = [ ./hardware-configuration.nix ./zeta ];

  boot.loader.grub.enable = true;
  boot.loader.grub.device = "/dev/vda";

  networking.hostName = "@hostname@";
  time.timeZone = "UTC";

  services.openssh = {
    enable = true;
    settings.PasswordAuthentication = false;
    settings.PermitRootLogin = "prohibit-password";
  };

  nix.settings.experimental-features = [ "nix-command" "flakes" ];
  environment.systemPackages = with pkgs; [ vim git htop ];

  system.stateVersion = "25.05"; # Did you read the comment?
}
"""

HARDWARE_CONFIGURATION_NIX = """# Do not modify this file!  It was generated by 'nixos-generate-config'
# and may be overwritten by future invocations.  Please make changes
# to /etc/nixos/configuration.nix instead.
{ config, lib, pkgs, modulesPath, ... }:

{
  imports = [ (modulesPath + "/profiles/qemu-guest.nix") ];

  boot.initrd.availableKernelModules = [ "ahci" "xhci_pci" "virtio_pci" "virtio_scsi" "sr_mod" "virtio_blk" ];
  boot.initrd.kernelModules = [ ];
  boot.kernelModules = [ "kvm-amd" ];
  boot.extraModulePackages = [ ];

  fileSystems."/" =
    { device = "/dev/disk/by-label/nixos";
      fsType = "ext4";
    };

  swapDevices = [ ];

  networking.useDHCP = lib.mkDefault true;
  nixpkgs.hostPlatform = lib.mkDefault "x86_64-linux";
}
"""

ZETA_DEFAULT_NIX = """# Every module zetactl manages in this folder (the folder is imported by configuration.nix).
{ lib, ... }:
{
  imports = map (name: ./. + "/${name}")
    (builtins.filter (name: name != "default.nix" && lib.hasSuffix ".nix" name)
      (builtins.attrNames (builtins.readDir ./.)));
}
"""

MODULES = {
    "k3s.nix": """# k3s: the cluster's Kubernetes (server on control-plane nodes, agent on GPU workers).
{ config, lib, pkgs, ... }:

{
  networking.firewall.allowedTCPPorts = [ 6443 10250 ];

  services.k3s = {
    enable = true;
    role = "@k3s_role@";
    extraFlags = toString [ "--disable traefik" ];
  };
}
""",
    "zeta-agents.nix": """# The zeta agents (one long-running service each).
{ config, lib, pkgs, ... }:

{
  systemd.services.zeta-otto = {
    description = "Zeta agent otto";
    wantedBy = [ "multi-user.target" ];
    after = [ "network-online.target" "k3s.service" ];
    environment = { ZETA_AGENT = "otto"; ZETA_STATE = "/var/lib/zeta/state"; };
    serviceConfig = { Restart = "always"; RestartSec = 2; };
    script = ''
      exec ${pkgs.zeta-agent}/bin/zeta-agent --name otto
    '';
  };

  systemd.services.zeta-lior = {
    description = "Zeta agent lior";
    wantedBy = [ "multi-user.target" ];
    after = [ "network-online.target" "k3s.service" ];
    environment = { ZETA_AGENT = "lior"; ZETA_STATE = "/var/lib/zeta/state"; };
    serviceConfig = { Restart = "always"; RestartSec = 2; };
    script = ''
      exec ${pkgs.zeta-agent}/bin/zeta-agent --name lior
    '';
  };

  systemd.services."zeta-vera" = {
    description = "Zeta agent vera";
    wantedBy = [ "multi-user.target" ];
    after = [ "network-online.target" "k3s.service" ];
    environment = { ZETA_AGENT = "vera"; ZETA_STATE = "/var/lib/zeta/state"; };
    serviceConfig = { Restart = "always"; RestartSec = 2; };
    script = ''
      exec ${pkgs.zeta-agent}/bin/zeta-agent --name vera
    '';
  };
}
""",
    "zeta-hubs.nix": """# The zeta hubs on the admin node.
{ config, lib, pkgs, ... }:

{
  systemd.services.zeta-hub-embedder = {
    description = "Zeta hub: embedder";
    wantedBy = [ "multi-user.target" ];
    after = [ "network-online.target" ];
    environment.ZETA_HUB = "embedder";
    serviceConfig = {
      ExecStart = "${pkgs.zeta-hub}/bin/zeta-hub --service embedder";
      Restart = "always";
      StateDirectory = "zeta-hub-embedder";
    };
  };

  systemd.services.zeta-hub-voice = {
    description = "Zeta hub: voice";
    wantedBy = [ "multi-user.target" ];
    after = [ "network-online.target" ];
    environment.ZETA_HUB = "voice";
    serviceConfig = {
      ExecStart = "${pkgs.zeta-hub}/bin/zeta-hub --service voice";
      Restart = "always";
      StateDirectory = "zeta-hub-voice";
    };
  };
}
""",
}


def boot_script() -> Sh:
    """The node's first process inside `unshare --mount --uts` (lab/scripts/boot.sh), which becomes its sshd."""
    return script("boot.sh", package="zetactl.lab.scripts", SIZE=TMPFS_SIZE, TREES=" ".join(OVERLAID))

