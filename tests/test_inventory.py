"""Inventory loading, variable precedence, host patterns and errors with file and line."""

from __future__ import annotations

from pathlib import Path

import pytest

from zetactl.errors import BadInput
from zetactl.inventory import load_inventory, select_hosts

INVENTORY = """\
all:
  vars:
    ansible_user: root
    region: eu          # all
    tier: base
  hosts:
    solo:
  children:
    cluster:
      vars:
        tier: cluster   # parent group
        region: us
      children:
        control_plane:
          vars: {tier: cp}  # child group beats parent
          hosts:
            cp1: {ansible_host: 127.0.0.1, region: host-wins}
            cp2: {ansible_host: 127.0.0.2, ansible_port: 2222}
        workers:
          hosts:
            gpu1: {ansible_host: 127.0.0.3}
            gpu2:
"""


@pytest.fixture
def inventory_file(tmp_path: Path) -> Path:
    path = tmp_path / "hosts.yml"
    path.write_text(INVENTORY)
    return path


def test_hosts_groups_and_connection_settings(inventory_file: Path) -> None:
    inv = load_inventory(inventory_file)
    assert list(inv.hosts) == ["solo", "cp1", "cp2", "gpu1", "gpu2"]
    cp2 = inv.host("cp2")
    assert (cp2.address, cp2.port, cp2.user) == ("127.0.0.2", 2222, "root")
    assert inv.host("gpu2").address == "gpu2"  # the name, when no ansible_host
    assert set(inv.host("cp1").groups) == {"all", "cluster", "control_plane"}
    assert inv.group_hosts("cluster") == ["cp1", "cp2", "gpu1", "gpu2"]
    assert inv.group_hosts("ungrouped") == ["solo"]
    assert inv.host("cp1").known_hosts == inventory_file.parent / "known_hosts"


def test_precedence_all_then_parents_then_children_then_host(inventory_file: Path) -> None:
    inv = load_inventory(inventory_file)
    assert inv.host("cp1").vars["region"] == "host-wins"
    assert inv.host("cp2").vars["region"] == "us"
    assert inv.host("cp2").vars["tier"] == "cp"
    assert inv.host("gpu1").vars["tier"] == "cluster"
    assert inv.host("solo").vars["tier"] == "base"


@pytest.mark.parametrize(("pattern", "expected"), [
    ("all", ["solo", "cp1", "cp2", "gpu1", "gpu2"]),
    ("control_plane", ["cp1", "cp2"]),
    ("cluster:!gpu2", ["cp1", "cp2", "gpu1"]),
    ("cluster,&workers", ["gpu1", "gpu2"]),
    ("gpu*", ["gpu1", "gpu2"]),
    ("cp1,gpu2", ["cp1", "gpu2"]),
    ("~^cp[0-9]$", ["cp1", "cp2"]),
    ("!solo", ["cp1", "cp2", "gpu1", "gpu2"]),
    ("cluster:&control_plane:!cp1", ["cp2"]),
])
def test_limit_patterns(inventory_file: Path, pattern: str, expected: list[str]) -> None:
    assert select_hosts(load_inventory(inventory_file), pattern) == expected


@pytest.mark.parametrize("pattern", ["nosuchhost", "cp1,typo", "zz*", "!nosuch"])
def test_unknown_names_in_a_limit_are_errors(inventory_file: Path, pattern: str) -> None:
    with pytest.raises(BadInput, match="--limit"):
        select_hosts(load_inventory(inventory_file), pattern)


@pytest.mark.parametrize(("text", "line", "message"), [
    ("all:\n  hosts:\n    a: {ansible_prot: 22}\n", 3, "unknown setting 'ansible_prot'"),
    ("all:\n  hostz:\n    a:\n", 2, "unknown key 'hostz'"),
    ("all:\n  hosts:\n    a:\n    a:\n", 4, "duplicate key 'a'"),
    ("all:\n  hosts: [a, b]\n", 2, "must be a mapping"),
    ("all:\n  hosts:\n    a: {ansible_port: many}\n", 3, "ansible_port must be a port number"),
    ("all:\n  children:\n    g: {children: {g: {}}}\n", 3, "its own ancestor"),
    ("all:\n  hosts:\n    a: {ansible_host: [1\n", 4, "flow sequence started at line 3"),
    ("all:\n  hosts:\n    a: b: c\n", 3, "mapping values are not allowed here"),
])
def test_bad_inventories_name_file_and_line(tmp_path: Path, text: str, line: int, message: str) -> None:
    path = tmp_path / "bad.yml"
    path.write_text(text)
    with pytest.raises(BadInput) as caught:
        load_inventory(path)
    assert caught.value.file == str(path)
    assert caught.value.line == line, caught.value
    assert message in caught.value.message


def test_existing_ansible_inventory_settings_load(tmp_path: Path) -> None:
    path = tmp_path / "ansible.yml"
    path.write_text("all:\n  vars:\n    ansible_python_interpreter: /usr/bin/python3\n"
                    "  hosts:\n    a:\n      ansible_connection: ssh\n")
    assert list(load_inventory(path).hosts) == ["a"]


def test_shipped_example_inventory_loads() -> None:
    inv = load_inventory(Path(__file__).parent.parent / "inventory" / "hosts.yml")
    assert inv.group_hosts("control_plane")
    assert all(h.vars.get("zeta_role") for h in inv.hosts.values())


def test_an_unknown_host_is_bad_input_naming_the_inventory(tmp_path: Path) -> None:
    path = tmp_path / "hosts.yml"
    path.write_text("all:\n  hosts:\n    a: {ansible_host: 127.0.0.1}\n")
    inv = load_inventory(path)
    assert inv.host("a").address == "127.0.0.1"
    with pytest.raises(BadInput, match="unknown host 'b'"):
        inv.host("b")
