"""Load an Ansible YAML inventory (`all: hosts:/children:/vars:`) into an Inventory.

Variable precedence inside the inventory, lowest first (written once, here):
    1. group `all`
    2. other groups, shallower before deeper, then by name (a child overrides its parent)
    3. the host's own vars
The play adds its defaults below these and `-e` values above them (see playbook.render).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from zetactl.errors import BadInput
from zetactl.inventory.model import Group, Host, Inventory
from zetactl.remote import names
from zetactl.yamlsrc import Located, load_yaml

GROUP_KEYS = {"hosts", "children", "vars"}
# The ansible_*/zeta_* names we know (connection, health, shipped playbooks); others are typos: rejected.
CONNECTION_VARS = {
    "ansible_host", "ansible_port", "ansible_user", "ansible_ssh_private_key_file",
    "zeta_ssh_ciphers", "zeta_ssh_kex",
    "zeta_known_hosts", "zeta_role", "zeta_node_id", "zeta_host_key_fingerprint", "zeta_bootstrap_key",
    "zeta_credential_areas",
    # health sweep settings (docs/health.md)
    "zeta_health_checks", "zeta_health_disks", "zeta_health_disk_warn", "zeta_health_disk_crit",
    "zeta_health_mem_warn", "zeta_health_mem_crit", "zeta_health_skew_warn", "zeta_health_skew_crit",
    "zeta_health_cred_warn_days", "zeta_health_hub_fits_warn",
    # variables the shipped playbooks read (playbooks/*.yml)
    "zeta_cluster", "zeta_agents", "zeta_agent_defaults", "zeta_agent_overrides", "zeta_hubs",
}
# Ansible settings that make no sense for zetactl but appear in existing inventories: accepted,
# ignored. (Host-key options in them are never honoured: checking is always on.)
IGNORED_ANSIBLE_VARS = {
    "ansible_connection", "ansible_python_interpreter", "ansible_become", "ansible_become_user",
    "ansible_become_method", "ansible_ssh_common_args", "ansible_ssh_extra_args", "ansible_shell_type",
}
DEFAULT_INVENTORY = Path("inventory") / "hosts.yml"


def resolve_inventory_path(path: Path) -> Path:
    if path.is_dir():
        for name in ("hosts.yml", "hosts.yaml", "inventory.yml", "inventory.yaml"):
            if (path / name).is_file():
                return path / name
        raise BadInput("no hosts.yml or inventory.yml in this directory", file=str(path))
    return path


def load_inventory(path: Path) -> Inventory:
    path = resolve_inventory_path(path)
    data = load_yaml(path)
    if data is None:
        raise BadInput("the inventory is empty", file=str(path))
    if not isinstance(data, Located):
        raise BadInput("an inventory is a mapping with a top-level 'all:' group", file=str(path), line=1)
    builder = _Builder(path)
    all_body = _group_body(data, "all") if "all" in data else Located.empty_at(str(path), 1)
    builder.add_group("all", all_body, parent=None, depth=0)
    for name in data:
        if name != "all":  # Ansible allows other top-level groups: they are children of all
            builder.add_group(name, _group_body(data, name), parent="all", depth=1)
    return builder.build()


def _group_body(parent: Located, name: str) -> Located:
    body = parent[name]
    if body is None:
        return Located.empty_at(parent.file, parent.line_of(name))
    if not isinstance(body, Located):
        raise parent.error(f"group {name!r} must be a mapping of hosts:/children:/vars:", name)
    return body


def _check_vars(section: Any, owner: Located, key: str) -> Located:
    if section is None:
        return Located.empty_at(owner.file, owner.line_of(key))
    if not isinstance(section, Located):
        raise owner.error(f"{key} must be a mapping", key)
    for var in section:
        if not var.isidentifier():
            raise section.error(f"variable name {var!r} is not a valid identifier", var)
        if var.startswith(("ansible_", "zeta_")) and var not in CONNECTION_VARS | IGNORED_ANSIBLE_VARS:
            raise section.error(f"unknown setting {var!r}", var)
    return section


class _Builder:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.group_vars: dict[str, dict[str, Any]] = {}
        self.group_depth: dict[str, int] = {}
        self.group_hosts: dict[str, list[str]] = {}
        self.group_children: dict[str, list[str]] = {}
        self.host_vars: dict[str, dict[str, Any]] = {}
        self.host_source: dict[str, str] = {}
        self.parents: dict[str, set[str]] = {}

    def add_group(self, name: str, body: Located, parent: str | None, depth: int) -> None:
        if name == "ungrouped" and parent != "all":
            raise body.error("'ungrouped' is reserved")
        for key in body:
            if key not in GROUP_KEYS:
                raise body.error(
                    f"unknown key {key!r} in group {name!r} (expected hosts, children or vars)", key
                )
        if parent is not None:
            if name == "all":
                raise body.error("'all' cannot be a child group")
            self.parents.setdefault(name, set()).add(parent)
            if self._is_ancestor(name, parent):
                raise body.error(f"group {name!r} is its own ancestor")
        self.group_depth[name] = max(self.group_depth.get(name, 0), depth)
        self.group_hosts.setdefault(name, [])
        self.group_children.setdefault(name, [])
        if "vars" in body:
            self.group_vars.setdefault(name, {}).update(_check_vars(body["vars"], body, "vars"))
        hosts = body.get("hosts")
        if hosts is not None:
            if not isinstance(hosts, Located):
                raise body.error(f"hosts of group {name!r} must be a mapping of host names", "hosts")
            for host in hosts:
                self._add_host(name, host, hosts)
        children = body.get("children")
        if children is not None:
            if not isinstance(children, Located):
                raise body.error(f"children of group {name!r} must be a mapping of group names", "children")
            for child in children:
                if child not in self.group_children[name]:
                    self.group_children[name].append(child)
                self.add_group(child, _group_body(children, child), parent=name, depth=depth + 1)

    def _is_ancestor(self, group: str, of: str) -> bool:
        seen: set[str] = set()
        todo = [of]
        while todo:
            current = todo.pop()
            if current == group:
                return True
            if current in seen:
                continue
            seen.add(current)
            todo.extend(self.parents.get(current, ()))
        return False

    def _add_host(self, group: str, host: str, hosts: Located) -> None:
        if host in ("all", "ungrouped"):
            raise hosts.error(f"invalid host name {host!r} (the name of a group)", host)
        try:
            names.host_name(host)
        except BadInput as exc:
            raise hosts.error(exc.message, host) from None
        body = hosts[host]
        if body is not None and not isinstance(body, Located):
            raise hosts.error(f"host {host!r} must map to its variables (or nothing)", host)
        self.host_vars.setdefault(host, {}).update(_check_vars(body, hosts, host) if body else {})
        self.host_source.setdefault(host, f"{hosts.file}:{hosts.line_of(host)}")
        if host not in self.group_hosts[group]:
            self.group_hosts[group].append(host)

    def _ancestors(self, group: str) -> set[str]:
        result: set[str] = set()
        todo = [group]
        while todo:
            current = todo.pop()
            for parent in self.parents.get(current, ()):
                if parent not in result:
                    result.add(parent)
                    todo.append(parent)
        return result

    def build(self) -> Inventory:
        membership: dict[str, set[str]] = {h: {"all"} for h in self.host_vars}
        for group, hosts in self.group_hosts.items():
            for host in hosts:
                membership[host] |= {group} | self._ancestors(group)
        grouped = {h for g, hs in self.group_hosts.items() if g != "all" for h in hs}
        ungrouped = [h for h in self.host_vars if h not in grouped]
        listed = self.group_hosts.setdefault("ungrouped", [])
        listed.extend(h for h in ungrouped if h not in listed)
        self.group_depth.setdefault("ungrouped", 1)
        self.parents.setdefault("ungrouped", set()).add("all")
        for host in ungrouped:
            membership[host].add("ungrouped")

        groups = {
            name: Group(
                name=name,
                hosts=tuple(self.group_hosts.get(name, ())),
                children=tuple(self.group_children.get(name, ())),
                vars=dict(self.group_vars.get(name, {})),
                depth=self.group_depth.get(name, 0),
            )
            for name in sorted(self.group_depth, key=lambda g: (self.group_depth[g], g))
        }
        host_map = {name: self._host(name, membership[name], groups) for name in self.host_vars}
        return Inventory(path=self.path, hosts=host_map, groups=groups)

    def _host(self, name: str, member_of: set[str], groups: Mapping[str, Group]) -> Host:
        ordered = sorted(member_of, key=lambda g: (groups[g].depth, g))
        merged: dict[str, Any] = {}
        for group in ordered:  # precedence: all < shallow groups < deep groups ...
            merged.update(groups[group].vars)
        merged.update(self.host_vars[name])  # ... < the host's own vars
        where = self.host_source[name]
        file, _, line = where.rpartition(":")

        def fail(message: str) -> BadInput:
            return BadInput(f"host {name!r}: {message}", file=file, line=int(line))

        port = merged.get("ansible_port", 22)
        if not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536:
            raise fail(f"ansible_port must be a port number, not {port!r}")
        address = merged.get("ansible_host", name)
        user = merged.get("ansible_user", "root")
        for key, value in (("ansible_host", address), ("ansible_user", user)):
            if not isinstance(value, str) or not value:
                raise fail(f"{key} must be a non-empty string")
        try:
            names.host_name(address, "ansible_host")
            names.account(user, "ansible_user")
            if merged.get("zeta_role") is not None:
                names.role(merged["zeta_role"], "zeta_role")
            if merged.get("zeta_node_id") is not None:
                names.node_id(merged["zeta_node_id"], "zeta_node_id")
        except BadInput as exc:
            raise fail(exc.message) from None
        key_file = merged.get("ansible_ssh_private_key_file")
        if key_file is not None and not isinstance(key_file, str):
            raise fail("ansible_ssh_private_key_file must be a path")
        known_hosts = merged.get("zeta_known_hosts", "known_hosts")
        if not isinstance(known_hosts, str):
            raise fail("zeta_known_hosts must be a path")
        base = self.path.parent
        return Host(
            name=name,
            address=address,
            port=port,
            user=user,
            key_file=(base / Path(key_file).expanduser()) if key_file else None,
            known_hosts=base / Path(known_hosts).expanduser(),
            groups=tuple(g for g in ordered),
            vars=merged,
            source=where,
        )
