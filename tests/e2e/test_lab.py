"""The lab: real sshd per node, private namespaces, and a NixOS command layer with real shapes."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from tests.conftest import Cli, needs_lab, write_playbook
from zetactl.lab import Lab
from zetactl.lab.fleet import namespace_members

pytestmark = [needs_lab]


def sh(cli: Cli, lab: Lab, node: str, command: str) -> dict[str, object]:
    result = cli("run", command, "-i", str(lab.inventory), "--limit", node, "--format", "json")
    host: dict[str, object] = result.json()["hosts"][node]
    return host


def test_each_node_has_its_own_hostname_and_private_trees(lab: Lab, cli: Cli) -> None:
    names = cli("run", "hostname", "-i", str(lab.inventory), "--format", "json", check_rc=0).json()["hosts"]
    assert {h: d["stdout"].strip() for h, d in names.items()} == {n.name: n.name for n in lab.nodes()}
    sh(cli, lab, "lab-001", "echo mine > /etc/zeta-private && echo x > /var/lib/zeta-private")
    assert lab.node("lab-001").path("/etc/zeta-private").read_text() == "mine\n"
    assert not lab.node("lab-002").path("/etc/zeta-private").exists()
    assert not Path("/etc/zeta-private").exists() and not Path("/var/lib/zeta-private").exists()
    out = sh(cli, lab, "lab-002", "test -e /etc/zeta-private; echo $?; findmnt -no FSTYPE /run")
    assert out["stdout"] == "1\ntmpfs\n"


def test_inventory_and_known_hosts_are_written(lab: Lab, cli: Cli) -> None:
    listed = cli("inventory", "list", "-i", str(lab.inventory), "--format", "json", check_rc=0).json()
    assert sorted(listed) == [f"lab-{i:03d}" for i in range(1, 11)]
    assert listed["lab-001"]["role"] == "control-plane" and listed["lab-004"]["role"] == "admin"
    pins = lab.known_hosts.read_text().splitlines()
    assert len(pins) == 10 and all(re.match(r"^127\.0\.20\.\d+ ssh-ed25519 AAAA", p) for p in pins)
    graph = cli("inventory", "graph", "-i", str(lab.inventory), check_rc=0).stdout
    assert "@all:" in graph and "--@control_plane:" in graph and "--lab-001" in graph


def test_systemctl_layer_shapes_and_exit_codes(lab: Lab, cli: Cli) -> None:
    node = "lab-008"
    out = sh(cli, lab, node, "systemctl is-active sshd; echo rc=$?; systemctl is-active nope; echo rc=$?; "
             "systemctl is-enabled nope; echo rc=$?; systemctl show -p ActiveState,UnitFileState,LoadState sshd")
    assert out["stdout"] == ("active\nrc=0\ninactive\nrc=4\nnot-found\nrc=4\n"
                             "ActiveState=active\nUnitFileState=enabled\nLoadState=loaded\n")
    out = sh(cli, lab, node, "printf '[Unit]\\nDescription=Broken\\n[Service]\\nExecStart=/bin/false\\n' "
             "> /etc/systemd/system/t-broken.service; systemctl start t-broken; echo rc=$?; "
             "systemctl is-active t-broken; echo rc=$?; systemctl --failed --no-legend | grep -c t-broken; "
             "journalctl -u t-broken -o cat | tail -n 1; systemctl is-enabled t-broken; echo rc=$?")
    assert out["stdout"] == "rc=1\nfailed\nrc=3\n1\nFailed to start Broken.\nstatic\nrc=0\n", out
    assert "Job for t-broken.service failed" in str(out["stderr"])
    out = sh(cli, lab, node, "journalctl -u never-ran")
    assert out["stdout"] == "-- No entries --\n"


def test_nixos_version_and_generations(lab: Lab, cli: Cli) -> None:
    out = sh(cli, lab, "lab-009", "nixos-version; nixos-version --json; nixos-version --revision; echo rc=$?; "
             "nix-env --list-generations -p /nix/var/nix/profiles/system; readlink /run/current-system; "
             "cat /proc/sys/kernel/random/boot_id")
    lines = str(out["stdout"]).splitlines()
    assert re.fullmatch(r"\d\d\.\d\d\.\d{8}\.[0-9a-f]{7} \(\w+\)", lines[0])
    assert lines[1].startswith('{"nixosVersion":"') and "nixpkgsRevision" not in lines[1]
    assert lines[2] == "rc=1" and "is unknown" in str(out["stderr"])
    assert re.fullmatch(r"   1   \d{4}-\d\d-\d\d \d\d:\d\d:\d\d   \(current\)", lines[3])
    assert re.fullmatch(r"/nix/store/[0-9a-z]{32}-nixos-system-lab-009-.*", lines[4])
    assert re.fullmatch(r"[0-9a-f-]{36}", lines[5])


def test_a_restarted_node_keeps_its_files_and_gets_a_new_boot(fault_lab: Lab, cli: Cli, tmp_path: Path) -> None:
    inv = str(fault_lab.inventory)
    play = write_playbook(tmp_path, "hosts: lab-001\nsteps:\n  - file: {path: /etc/t-persist, content: kept}\n")
    cli("deploy", str(play), "-i", inv, check_rc=0)
    before = sh(cli, fault_lab, "lab-001", "cat /proc/sys/kernel/random/boot_id")["stdout"]
    fault_lab.stop_node("lab-001")
    assert fault_lab.node("lab-001").state() == "stopped"
    assert cli("run", "true", "-i", inv, "--limit", "lab-001").returncode == 3
    fault_lab.start_node("lab-001")
    assert sh(cli, fault_lab, "lab-001", "cat /etc/t-persist")["stdout"] == "kept"
    assert sh(cli, fault_lab, "lab-001", "cat /proc/sys/kernel/random/boot_id")["stdout"] != before


def test_down_stops_exactly_the_processes_it_started(tmp_path: Path) -> None:
    lab = Lab(tmp_path / "own", subnet=40)
    lab.up(2)
    nodes = lab.nodes()
    members = {pid for members in namespace_members(n.pid for n in nodes).values() for pid, _ in members}
    assert {n.pid for n in nodes} <= members
    bystander = os.getpid()
    lab.down()
    assert all(not n.alive() for n in nodes)
    assert not any(Path(f"/proc/{pid}").exists() and _same_start(pid, nodes) for pid in members)
    assert Path(f"/proc/{bystander}").exists()
    assert lab.nodes() == []


def _same_start(pid: int, nodes: list[object]) -> bool:
    from zetactl.lab.fleet import process_start_time
    return process_start_time(pid) > 0 and any(getattr(n, "pid", None) == pid for n in nodes)


def test_lab_refuses_directories_it_would_hide(tmp_path: Path) -> None:
    from zetactl.errors import LabError
    with pytest.raises(LabError, match="cannot live under"):
        Lab(Path("/var/tmp/zeta-lab-test"), subnet=50).up(1)


def test_a_second_lab_on_a_subnet_in_use_is_refused(fault_lab: Lab, tmp_path: Path) -> None:
    from zetactl.lab.fleet import LabError

    other = Lab(tmp_path / "other", subnet=fault_lab.subnet)
    with pytest.raises(LabError, match=r"127\.0\.30\.1:22 is already in use"):
        other.up(2)
    assert all(node.alive() for node in fault_lab.nodes())  # the lab that was there is untouched
    assert not other.nodes()
