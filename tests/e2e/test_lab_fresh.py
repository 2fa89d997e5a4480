"""Fresh nodes (`zetactl lab fresh`): just installed from the zeta USB installer, reachable only with the
bootstrap key, whose forced command is zeta-bootstrap."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import Cli, needs_lab
from zetactl.errors import LabError
from zetactl.lab import Lab

pytestmark = [needs_lab]

SUBNET = 140
FRESH = ("lab-003", "lab-004")


@dataclass
class Fresh:
    lab: Lab
    cli: Cli
    tmp: Path
    bootstrap: Path  # private key; .pub next to it
    listed: list[dict[str, str]]  # `lab fresh --format json`

    def address(self, name: str) -> str:
        return self.lab.node(name).address

    def known_hosts(self, name: str) -> Path:
        """A known_hosts made out of band from host_key.pub (the key as read on the node's console)."""
        key_type, key = (self.lab.dir / "nodes" / name / "host_key.pub").read_text().split()[:2]
        path = self.tmp / f"known_hosts-{name}"
        path.write_text(f"{self.address(name)} {key_type} {key}\n")
        return path

    def ssh(self, name: str, *command: str, key: Path | None = None, stdin: str = "",
            known_hosts: Path | None = None, tty: bool = False) -> subprocess.CompletedProcess[str]:
        args = ["ssh", "-F", "/dev/null", "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes",
                "-o", f"UserKnownHostsFile={known_hosts or self.known_hosts(name)}",
                "-o", "GlobalKnownHostsFile=/dev/null", "-o", "StrictHostKeyChecking=yes",
                "-o", "ConnectTimeout=10", "-i", str(key or self.bootstrap), *(["-tt"] if tty else []),
                f"root@{self.address(name)}", *command]
        return subprocess.run(args, input=stdin, capture_output=True, text=True, timeout=30)

    def authorized(self, name: str) -> bytes:
        return (self.lab.dir / "nodes" / name / "upper/etc/ssh/authorized_keys.d/root").read_bytes()


def keygen(path: Path, comment: str) -> Path:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)], check=True)
    return path


@pytest.fixture(scope="module")
def fresh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fresh]:
    tmp = tmp_path_factory.mktemp("fresh")
    lab = Lab(tmp / "lab", subnet=SUBNET)
    cli = Cli(tmp / "zetactl-home")
    lab.up(2)
    try:
        bootstrap = keygen(tmp / "bootstrap", "installer")
        out = cli("lab", "fresh", "2", "--bootstrap-key", f"{bootstrap}.pub", "--dir", str(lab.dir),
                  "--format", "json", check_rc=0)
        yield Fresh(lab, cli, tmp, bootstrap, out.json())
    finally:
        lab.down()


def test_fresh_nodes_continue_the_lab_and_stay_out_of_known_hosts_and_inventory(fresh: Fresh) -> None:
    lab = fresh.lab
    assert [(n.name, n.address, n.group) for n in lab.nodes()] == [
        ("lab-001", "127.0.140.1", "control_plane"), ("lab-002", "127.0.140.2", "control_plane"),
        ("lab-003", "127.0.140.3", "fresh"), ("lab-004", "127.0.140.4", "fresh")]
    assert [r["node"] for r in fresh.listed] == list(FRESH)
    pins = lab.known_hosts.read_text()
    inventory = lab.inventory.read_text()
    assert len(pins.splitlines()) == 2 and "lab-001" in inventory
    for name in FRESH:
        host_pub = (lab.dir / "nodes" / name / "host_key.pub").read_text()
        on_node = lab.node(name).path("/etc/ssh/ssh_host_ed25519_key.pub").read_text()
        assert host_pub.split()[:2] == on_node.split()[:2]
        assert host_pub.split()[1] not in pins
        assert name not in inventory and lab.node(name).address not in inventory
        # The printed fingerprint is what ssh-keygen computes from the key read on the console.
        keygen_fp = subprocess.run(["ssh-keygen", "-lf", str(lab.dir / "nodes" / name / "host_key.pub")],
                                   capture_output=True, text=True, check=True).stdout.split()[1]
        row = next(r for r in fresh.listed if r["node"] == name)
        assert row["fingerprint"] == keygen_fp and row["address"] == lab.node(name).address
    assert fresh.listed[0]["host_key"].split()[1] != fresh.listed[1]["host_key"].split()[1]
    # Root's only key is the bootstrap key, restricted to the forced command.
    pub = Path(f"{fresh.bootstrap}.pub").read_text().split()
    assert fresh.authorized("lab-003") == (
        f'restrict,command="/usr/local/sbin/zeta-bootstrap" {pub[0]} {pub[1]} zeta-bootstrap\n').encode()


def test_first_contact_needs_the_out_of_band_host_key(fresh: Fresh) -> None:
    # With the lab's known_hosts (which has no pin for it) ssh refuses the host.
    denied = fresh.ssh("lab-003", "zeta-bootstrap", "info", known_hosts=fresh.lab.known_hosts)
    assert denied.returncode == 255 and "Host key verification failed" in denied.stderr, denied
    # The lab's operator key is not accepted on a fresh node.
    operator = fresh.ssh("lab-003", "true", key=fresh.lab.operator_key)
    assert operator.returncode == 255 and "Permission denied" in operator.stderr, operator


def test_info(fresh: Fresh) -> None:
    out = fresh.ssh("lab-004", "zeta-bootstrap info")
    assert out.returncode == 0, out
    host_pub = (fresh.lab.dir / "nodes" / "lab-004" / "host_key.pub").read_text().strip()
    assert out.stdout == f"hostname lab-004\nhost_key {host_pub}\nnode_id \n"


@pytest.mark.parametrize("command", [
    "id", "sh -c id", "zeta-bootstrap info; id", "zeta-bootstrap info extra", "zeta-bootstrap  info",
    "zeta-bootstrap set-node-id $(id)", "zeta-bootstrap set-node-id abcdefgh;id", "/bin/bash", "zeta-bootstrap",
    "zeta-bootstrap set-node-id short", "install-key",
])
def test_other_commands_are_refused(fresh: Fresh, command: str) -> None:
    out = fresh.ssh("lab-004", command)
    assert out.returncode == 1, out
    assert "uid=" not in out.stdout + out.stderr and out.stdout == ""
    assert f"zeta-bootstrap: refused: {command}" in out.stderr or "refused: set-node-id" in out.stderr, out
    assert not fresh.lab.node("lab-004").path("/etc/zeta/node-id").exists()


def test_a_shell_is_refused(fresh: Fresh) -> None:
    plain = fresh.ssh("lab-004", stdin="id\n")
    assert plain.returncode == 1 and "uid=" not in plain.stdout, plain
    assert "zeta-bootstrap: refused: (no command" in plain.stderr
    tty = fresh.ssh("lab-004", stdin="id\nexit 0\n", tty=True)  # restrict: no pty, and still the forced command
    assert tty.returncode != 0 and "uid=" not in tty.stdout + tty.stderr, tty


def test_install_key_adds_the_key_once_and_it_logs_in(fresh: Fresh) -> None:
    new = keygen(fresh.tmp / "operator-003", "zetactl@ops")
    before = fresh.authorized("lab-003")
    # Not accepted yet.
    assert fresh.ssh("lab-003", "true", key=new).returncode == 255
    line = Path(f"{new}.pub").read_text()
    first = fresh.ssh("lab-003", "zeta-bootstrap install-key", stdin=line)
    assert (first.returncode, first.stdout) == (0, "installed\n"), first
    again = fresh.ssh("lab-003", "zeta-bootstrap install-key", stdin=line)
    assert (again.returncode, again.stdout) == (0, "present\n"), again
    other_comment = fresh.ssh("lab-003", "zeta-bootstrap install-key", stdin=" ".join(line.split()[:2]) + " x\n")
    assert other_comment.stdout == "present\n", other_comment
    assert fresh.authorized("lab-003") == before + line.encode()
    # The bootstrap key itself is present (restricted): install-key does not make it a full key.
    boot = fresh.ssh("lab-003", "zeta-bootstrap install-key", stdin=Path(f"{fresh.bootstrap}.pub").read_text())
    assert boot.stdout == "present\n" and fresh.authorized("lab-003") == before + line.encode()
    assert fresh.ssh("lab-003", "id -u").returncode == 1
    # The installed key is a normal login: a full shell.
    shell = fresh.ssh("lab-003", "echo $0; id -u; hostname; cat /etc/ssh/authorized_keys.d/root | wc -l", key=new)
    assert (shell.returncode, shell.stdout) == (0, "bash\n0\nlab-003\n2\n"), shell


@pytest.mark.parametrize("key", [
    "",
    "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC7 rsa\n",
    'command="/bin/sh" {key}\n',
    "restrict {key}\n",
    "{key} two words\n",
    "{key} bad;comment\n",
    "{key} $(id)\n",
    "{key}\n{key}\n",
    "{key}\r\n",
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIG\n",
    "ssh-ed25519 AAAAC3NzaC1yc2EAAAADAQABAAABAQC7cdf3bd8d9b0b40d17FISIAHQYZDxcqBvxyTs3QmQH7XuIyE= x\n",
    "ssh-ed25519\t{blob} tab\n",
    "x" * 5000 + "\n",
])
def test_a_malformed_key_is_refused_and_the_file_is_unchanged(fresh: Fresh, key: str) -> None:
    good = keygen(fresh.tmp / f"good-{abs(hash(key))}", "good")
    good_line = " ".join(Path(f"{good}.pub").read_text().split()[:2])
    text = key.replace("{key}", good_line).replace("{blob}", good_line.split()[1])
    before = fresh.authorized("lab-004")
    out = fresh.ssh("lab-004", "zeta-bootstrap install-key", stdin=text)
    assert out.returncode == 1 and out.stdout == "", out
    assert "zeta-bootstrap: refused: install-key" in out.stderr, out
    assert fresh.authorized("lab-004") == before
    assert fresh.ssh("lab-004", "true", key=good).returncode == 255


def test_set_node_id(fresh: Fresh) -> None:
    node = fresh.lab.node("lab-004")
    assert fresh.ssh("lab-004", "zeta-bootstrap set-node-id bad_id_123").returncode == 1
    first = fresh.ssh("lab-004", "zeta-bootstrap set-node-id node-4f1c2a9e")
    assert (first.returncode, first.stdout) == (0, "node-4f1c2a9e\n"), first
    assert node.path("/etc/zeta/node-id").read_text() == "node-4f1c2a9e\n"
    same = fresh.ssh("lab-004", "zeta-bootstrap set-node-id node-4f1c2a9e")
    assert (same.returncode, same.stdout) == (0, "node-4f1c2a9e\n"), same
    other = fresh.ssh("lab-004", "zeta-bootstrap set-node-id node-00000000")
    assert other.returncode == 1 and "already node-4f1c2a9e" in other.stderr, other
    assert node.path("/etc/zeta/node-id").read_text() == "node-4f1c2a9e\n"
    assert fresh.ssh("lab-004", "zeta-bootstrap info").stdout.endswith("\nnode_id node-4f1c2a9e\n")


def test_up_keeps_fresh_nodes_and_refuses_their_names(fresh: Fresh) -> None:
    lab = fresh.lab
    pids = {n.name: n.pid for n in lab.nodes()}
    lab.up(2)
    assert {n.name: n.pid for n in lab.nodes()} == pids and all(n.alive() for n in lab.nodes())
    with pytest.raises(LabError, match="lab-003"):
        lab.up(3)
    assert {n.name: n.pid for n in lab.nodes()} == pids and len(lab.known_hosts.read_text().splitlines()) == 2


def test_status_stop_start_keep_a_fresh_node(fresh: Fresh) -> None:
    rows = fresh.cli("lab", "status", "--dir", str(fresh.lab.dir), "--format", "json", check_rc=0).json()
    assert [(r["node"], r["group"], r["state"]) for r in rows if r["group"] == "fresh"] == [
        ("lab-003", "fresh", "running"), ("lab-004", "fresh", "running")]
    fresh.cli("lab", "stop", "lab-004", "--dir", str(fresh.lab.dir), check_rc=0)
    assert fresh.lab.node("lab-004").state() == "stopped"
    assert fresh.ssh("lab-004", "zeta-bootstrap info").returncode == 255
    fresh.cli("lab", "start", "lab-004", "--dir", str(fresh.lab.dir), check_rc=0)
    out = fresh.ssh("lab-004", "zeta-bootstrap info")  # same host key, same bootstrap key
    assert out.returncode == 0 and out.stdout.startswith("hostname lab-004\n"), out


def test_down_stops_fresh_nodes(fresh: Fresh) -> None:  # last: it ends the module's lab
    nodes = fresh.lab.nodes()
    assert len(nodes) == 4 and all(n.alive() for n in nodes)
    out = fresh.cli("lab", "down", "--dir", str(fresh.lab.dir), check_rc=0)
    assert "stopped 4 nodes" in out.stderr
    assert not any(n.alive() for n in nodes)
    assert fresh.lab.nodes() == []
