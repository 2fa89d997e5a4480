"""Node identity against the lab: register fresh installer nodes with their fingerprints, deploy,
rotate to per-node keys (also after an interruption), prove the bootstrap key refused, retire one."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tests.conftest import ROOT, Cli, _lab, needs_lab, totals
from zetactl.errors import Unreachable
from zetactl.inventory import load_inventory
from zetactl.lab import Lab
from zetactl.remote import Sh
from zetactl.remote.runner import run
from zetactl.transport import ConnectOptions, connect

pytestmark = [needs_lab]
FRESH = ["lab-004", "lab-005", "lab-006", "lab-007", "lab-008"]


@pytest.fixture(scope="module")
def bootstrap_key(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("bootstrap")
    key = Ed25519PrivateKey.generate()
    private = directory / "bootstrap_ed25519"
    private.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                          serialization.NoEncryption()))
    private.chmod(0o600)
    private.with_name("bootstrap_ed25519.pub").write_bytes(
        key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
        + b" zeta-bootstrap\n")
    return private


@pytest.fixture(scope="module")
def idlab(tmp_path_factory: pytest.TempPathFactory, bootstrap_key: Path) -> Iterator[Lab]:
    """Three registered nodes (lab-001..003, control plane) and five fresh from the installer."""
    for lab in _lab(tmp_path_factory.mktemp("idlab"), 3, subnet=150):
        lab.fresh(5, bootstrap_key.with_name("bootstrap_ed25519.pub"))
        yield lab


def fingerprint_of(lab: Lab, node: str) -> str:
    """Read "on the console": the node's own host key file, not what the network offers."""
    pub = lab.dir / "nodes" / node / "host_key.pub"
    out = subprocess.run(["ssh-keygen", "-lf", str(pub)], capture_output=True, text=True, check=True).stdout
    return out.split()[1]


def logs_in(lab: Lab, node: str, key: Path) -> bool:
    host = replace(load_inventory(lab.inventory).host(node), key_file=key)

    async def attempt() -> bool:
        try:
            async with await connect(host, ConnectOptions(connect_timeout=5)) as conn:
                result = await run(conn, Sh("zf shell yes"))
                return result.rc == 0 and result.records().text("shell") == "yes"
        except Unreachable:
            return False

    return asyncio.run(attempt())


def test_register_deploy_rotate_retire(idlab: Lab, cli: Cli, bootstrap_key: Path) -> None:
    inventory = str(idlab.inventory)
    before = idlab.inventory.read_text()
    # a wrong fingerprint pins nothing and writes nothing
    wrong = cli("node", "register", "lab-004", "--address", idlab.node("lab-004").address, "--role", "worker-gpu",
                "--host-key-fingerprint", fingerprint_of(idlab, "lab-005"), "--bootstrap-key", str(bootstrap_key),
                "-i", inventory, check_rc=2)
    assert "nothing was pinned" in wrong.stderr and idlab.inventory.read_text() == before
    # without a fingerprint and without a terminal: refused, never silently trusted
    silent = cli("node", "register", "lab-004", "--address", idlab.node("lab-004").address, "--role", "worker-gpu",
                 "--bootstrap-key", str(bootstrap_key), "-i", inventory, check_rc=4)
    assert "needs --host-key-fingerprint" in silent.stderr
    assert idlab.node("lab-004").address not in idlab.known_hosts.read_text()
    # the script: register five fresh nodes with their fingerprints
    for node in FRESH:
        cli("node", "register", node, "--address", idlab.node(node).address, "--role", "worker-gpu",
            "--host-key-fingerprint", fingerprint_of(idlab, node), "--bootstrap-key", str(bootstrap_key),
            "-i", inventory, check_rc=0)
    text = idlab.inventory.read_text()
    assert text.startswith("# Written by `zetactl lab up`")  # the comment survived the edits
    inv = load_inventory(idlab.inventory)
    assert all(inv.host(n).vars["zeta_node_id"] for n in FRESH)
    assert set(FRESH) <= set(inv.group_hosts("worker_gpu"))
    node_ids = {n: idlab.node(n).path("/etc/zeta/node-id").read_text().strip() for n in FRESH}
    assert node_ids == {n: inv.host(n).vars["zeta_node_id"] for n in FRESH}
    # deploy to them, twice
    site = str(ROOT / "playbooks" / "site.yml")
    limit = ":".join(FRESH)
    first = cli("deploy", site, "-i", inventory, "--limit", limit, "--format", "json", check_rc=0).json()
    assert totals(first, "changed") > 0
    second = cli("deploy", site, "-i", inventory, "--limit", limit, "--format", "json", check_rc=0).json()
    assert totals(second, "changed") == 0
    operator = idlab.operator_key
    assert logs_in(idlab, "lab-004", operator) and not logs_in(idlab, "lab-004", bootstrap_key)  # forced command
    # rotate; one of them is cut off right after the new key is installed
    interrupted = cli.env.copy()
    interrupted["ZETACTL_FAULT"] = "rotate:installed"
    killed = subprocess.run([sys.executable, "-m", "zetactl", "node", "rotate-identity", "lab-005", "-i", inventory],
                            env=interrupted, capture_output=True, text=True, timeout=60)
    assert killed.returncode == 137
    per_node = cli.home / "keys" / "lab-005" / "id_ed25519"
    assert logs_in(idlab, "lab-005", operator) and logs_in(idlab, "lab-005", per_node)  # both work meanwhile
    for node in FRESH:
        result = cli("node", "rotate-identity", node, "-i", inventory, check_rc=0)
        assert "proven refused" in result.stderr, result
        key = cli.home / "keys" / node / "id_ed25519"
        assert logs_in(idlab, node, key)
        assert not logs_in(idlab, node, operator)
    # the bootstrap key no longer even reaches the bootstrap command
    refused = subprocess.run(["ssh", "-i", str(bootstrap_key), "-o", f"UserKnownHostsFile={idlab.known_hosts}",
                              "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes",
                              f"root@{idlab.node('lab-006').address}", "zeta-bootstrap info"],
                             capture_output=True, text=True, timeout=30)
    assert refused.returncode == 255 and "Permission denied" in refused.stderr
    again = cli("deploy", site, "-i", inventory, "--limit", limit, "--format", "json", check_rc=0).json()
    assert totals(again, "changed") == 0  # now over the per-node keys
    # retire one; a control-plane node below the floor is refused
    floor = cli("node", "retire", "lab-001", "-i", inventory, check_rc=2)
    assert "--force" in floor.stderr and "lab-001" in idlab.inventory.read_text()
    cli("node", "retire", "lab-008", "-i", inventory, check_rc=0)
    assert "lab-008" not in load_inventory(idlab.inventory).hosts
    assert idlab.node("lab-008").address not in idlab.known_hosts.read_text()
    assert idlab.node("lab-008").path("/var/lib/zeta/state/retired").exists()
    assert idlab.node("lab-008").path("/etc/ssh/authorized_keys.d/root").read_text().strip() == ""
