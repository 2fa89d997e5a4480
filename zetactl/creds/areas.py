"""Where a credential may land on a node: the node's credential areas.

    zeta_credential_areas: [/home/zeta-otto/.config/otto]   # inventory, per host or group: areas beyond the default

`/run/zeta/creds` (tmpfs) is every node's area; an inventory may declare more (a service user's home, a folder
under /etc that the NixOS configuration does not own). An area is an absolute directory, never `/` or a folder
right under it (`/run`, `/etc`, `/home` ...), never a system or zetactl folder (`SYSTEM`: `/run/current-system`,
`/run/systemd`, `/etc/static`, `/nix` ...). A credential's path lies strictly inside an area of every host it is
sealed for, and is not one zetactl keeps for itself (a tenant's hub token, the generations). The value itself
always stays in tmpfs: the path is a link to it. At install the node checks again that every parent folder is a
real folder (not a link) owned by root or by the credential's owner (scripts/credential_install.sh).
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterable

from zetactl.errors import BadInput
from zetactl.inventory import Host
from zetactl.remote import names

DEFAULT_AREA = "/run/zeta/creds"
SYSTEM = ("/run/current-system", "/run/booted-system", "/run/systemd", "/run/wrappers", "/run/nixos", "/run/keys",
          "/run/zeta/switch", "/run/zeta-lab", "/run/sshd", "/etc/static", "/etc/nixos", "/etc/ssh", "/etc/systemd",
          "/etc/pam.d", "/etc/sudoers.d", "/etc/zeta", "/nix", "/proc", "/sys", "/dev", "/boot", "/usr", "/bin",
          "/sbin", "/lib", "/lib64", "/var/lib/zeta", "/var/lib/systemd",
          # anyone may write there (or it is a link to /run): a user could take a name first
          "/tmp", "/var/tmp", "/dev/shm", "/var/run")
BROAD = ("/run/user", "/var/lib", "/var/run", "/var/log", "/var/cache", "/usr/local", "/run/zeta")
INTERNAL = (f"{DEFAULT_AREA}/.gen", f"{DEFAULT_AREA}/.in")  # the generations and the opening room
TOKEN_PREFIX = f"{DEFAULT_AREA}/hub-"  # tenants' hub tokens (zetactl tenant): never sealed by hand
TOKEN_NAME_PREFIX = "hub-"


def _inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip("/") + "/")


def normal(path: str, what: str) -> str:
    """An absolute path in its one spelling: no `.` or `..`, no `//`, no trailing `/`."""
    names.path(path, what)
    if posixpath.normpath(path) != path or path.startswith("//"):
        raise BadInput(f"{what} {names.show(path)} is not written plainly: no '.', '..', '//' or a trailing '/' "
                       f"(did you mean {names.show(posixpath.normpath(path))}?)")
    return path


def check_area(area: object, where: str) -> str:
    if not isinstance(area, str):
        raise BadInput(f"{where}: a credential area is an absolute folder, not {names.show(area)}")
    normal(area, f"{where}: credential area")
    if area.count("/") < 2 or area in BROAD:
        raise BadInput(f"{where}: credential area {names.show(area)} is too broad: name a folder of its own "
                       "(/home/USER/.config/APP, /etc/APP/creds)")
    if any(_inside(area, s) or _inside(s, area) for s in SYSTEM):
        raise BadInput(f"{where}: credential area {names.show(area)} is a system or zetactl folder (or holds one)")
    return area


def areas(host: Host) -> tuple[str, ...]:
    """The host's credential areas: /run/zeta/creds and what its inventory declares."""
    declared = host.vars.get("zeta_credential_areas", [])
    where = f"{host.source}: host {host.name}: zeta_credential_areas"
    if not isinstance(declared, list):
        raise BadInput(f"{where}: a list of folders")
    return (DEFAULT_AREA, *(check_area(a, where) for a in declared))


def check_path(path: str, hosts: Iterable[Host], *, tokens: bool = False) -> str:
    """A credential's path: plainly written, strictly inside an area of every host, not zetactl's own
    (`tokens`: a tenant's hub token, which only `zetactl tenant` seals)."""
    normal(path, "credential path")
    if any(_inside(path, s) for s in (*SYSTEM, *INTERNAL)):
        raise BadInput(f"credential path {names.show(path)} is in a system or zetactl folder")
    if path.startswith(TOKEN_PREFIX) and not tokens:
        raise BadInput(f"credential path {names.show(path)} is kept for tenants' hub tokens (zetactl tenant add)")
    for host in hosts:
        inside = [a for a in areas(host) if path.startswith(a + "/")]
        if not inside:
            raise BadInput(f"credential path {names.show(path)} is outside {host.name}'s credential areas "
                           f"({', '.join(areas(host))}): use one of them, or declare the folder in "
                           "zeta_credential_areas for that host")
    return path
