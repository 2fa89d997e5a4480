"""Credential targets that cannot escape, installed values that are verified, node state that is private.

Each case is a hostile user's move on a lab node (a link planted in a parent folder, a value replaced in place)
or an operator's mistake (a system path, a path another credential holds, a tenant's token name), tried for real.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.conftest import _lab, needs_lab
from tests.e2e.canary import CredCli, node_file
from zetactl.lab import Lab

pytestmark = [needs_lab, pytest.mark.skipif(not shutil.which("age"), reason="needs the age tool")]


@pytest.fixture(scope="module")
def clab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    yield from _lab(tmp_path_factory.mktemp("confined"), 2, subnet=85)


@pytest.fixture
def ccli(tmp_path: Path) -> CredCli:
    return CredCli(tmp_path / "zetactl-home")


@pytest.fixture
def value(tmp_path: Path) -> Path:
    path = tmp_path / "value"
    path.write_bytes(b"confined-value-3f9a\n")
    return path


def with_areas(lab: Lab, tmp_path: Path, host: str, areas: list[str]) -> str:
    """A copy of the lab's inventory that declares credential areas for one host."""
    data = yaml.safe_load(lab.inventory.read_text())
    for group in data["all"].get("children", {}).values():
        if host in (group or {}).get("hosts", {}):
            group["hosts"][host] = {**(group["hosts"][host] or {}), "zeta_credential_areas": areas}
    path = tmp_path / "inventory.yml"
    path.write_text(yaml.safe_dump(data))  # the lab's key and known_hosts are absolute paths
    return str(path)


def refusal(result: object) -> str:
    lines = result.stderr.strip().splitlines()  # type: ignore[attr-defined]
    assert result.returncode == 4 and len(lines) == 1, result  # type: ignore[attr-defined]
    return str(lines[0])


def test_a_credential_path_stays_in_its_areas_and_clear_of_what_is_not_its_own(clab: Lab, ccli: CredCli,
                                                                                   value: Path) -> None:
    inventory = str(clab.inventory)
    seal = ["creds", "seal", "--hosts", "lab-001", "--from-file", str(value), "-i", inventory]
    cases = {
        "/run/user/65534/app/issue.net": "outside lab-001's credential areas",
        "/run/current-system": "system or zetactl folder",
        "/run/systemd/cred": "system or zetactl folder",
        "/etc/static/x": "system or zetactl folder",
        "/run/.": "not written plainly",
        "/run/zeta/creds/../x": "not written plainly",
        "/run/zeta/creds/.gen/x": "system or zetactl folder",
        "/run/zeta/creds/hub-embedder": "kept for tenants' hub tokens",
        "/etc/zc-cred": "outside lab-001's credential areas",
    }
    for path, needle in cases.items():
        assert needle in refusal(ccli(*seal[:2], "zc-x", *seal[2:], "--path", path)), path
    assert "kept for tenants' hub tokens" in refusal(ccli(*seal[:2], "hub-embedder.acme", *seal[2:]))
    ccli(*seal[:2], "zc-one", *seal[2:], "--path", "/run/zeta/creds/shared", check_rc=0)
    assert "already used by credential 'zc-one'" in refusal(
        ccli(*seal[:2], "zc-two", *seal[2:], "--path", "/run/zeta/creds/shared"))


def test_an_area_is_declared_and_a_link_in_a_parent_is_refused_on_the_node(clab: Lab, ccli: CredCli, value: Path,
                                                                           tmp_path: Path) -> None:
    """The issue's repro: as `nobody`, `ln -s /etc /run/user/65534/app`; a credential for nobody under it must not
    replace /etc/issue.net. With the area declared, the node walks the parents and refuses the link."""
    node = clab.node("lab-002")
    issue = node.path("/etc/issue.net")
    before = issue.read_bytes() if issue.exists() else None
    home = node.path("/run/user/65534")
    home.mkdir(parents=True, exist_ok=True)
    os.chown(home, 65534, 65534)
    (home / "app").symlink_to("/etc")
    os.lchown(home / "app", 65534, 65534)
    for bad in (["/run"], ["/run/user"], ["/etc"], ["/run/systemd/x"], ["relative"]):
        inventory = with_areas(clab, tmp_path, "lab-002", bad)
        assert "credential area" in refusal(ccli("creds", "seal", "zc-user", "--hosts", "lab-002", "--from-file",
                                                 str(value), "--path", "/run/zeta/creds/zc-user", "-i", inventory))
    inventory = with_areas(clab, tmp_path, "lab-002", ["/run/user/65534", "/etc/zc-app/creds"])
    ccli("creds", "seal", "zc-user", "--hosts", "lab-002", "--from-file", str(value), "--owner", "nobody",
         "--path", "/run/user/65534/app/issue.net", "-i", inventory, check_rc=0)
    pushed = ccli("creds", "push", "zc-user", "-i", inventory, "--format", "json")
    assert pushed.returncode == 2, pushed
    error = json.loads(pushed.stdout)["hosts"]["lab-002"]["steps"][0]["error"]
    assert "/run/user/65534/app is a symbolic link" in error, error
    assert (issue.read_bytes() if issue.exists() else None) == before and not issue.is_symlink()
    # a declared area under /etc: made by the node (root, 0755), the value linked there, twice
    ccli("creds", "seal", "zc-app", "--hosts", "lab-002", "--from-file", str(value), "--path",
         "/etc/zc-app/creds/token", "-i", inventory, check_rc=0)
    first = json.loads(ccli("creds", "push", "zc-app", "-i", inventory, "--format", "json", check_rc=0).stdout)
    assert first["hosts"]["lab-002"]["changed"] == 1
    assert node_file(clab, "lab-002", "/etc/zc-app/creds/token").read_bytes() == b"confined-value-3f9a\n"
    assert node.path("/etc/zc-app/creds/token").is_symlink()  # the value itself stays in tmpfs
    second = json.loads(ccli("creds", "push", "zc-app", "-i", inventory, "--format", "json", check_rc=0).stdout)
    assert second["hosts"]["lab-002"]["changed"] == 0


def test_a_value_replaced_on_the_node_is_found_and_put_back(clab: Lab, ccli: CredCli, value: Path) -> None:
    inventory = str(clab.inventory)
    ccli("creds", "seal", "zc-kept", "--hosts", "lab-001", "--from-file", str(value), "-i", inventory, check_rc=0)
    first = json.loads(ccli("creds", "push", "zc-kept", "-i", inventory, "--format", "json", check_rc=0).stdout)
    assert first["hosts"]["lab-001"]["changed"] == 1
    again = json.loads(ccli("creds", "push", "zc-kept", "-i", inventory, "--format", "json", check_rc=0).stdout)
    step = again["hosts"]["lab-001"]["steps"][0]
    assert again["hosts"]["lab-001"]["changed"] == 0 and "value verified" in step["summary"], step
    ccli("creds", "verify", "zc-kept", "-i", inventory, check_rc=0)
    installed = node_file(clab, "lab-001", "/run/zeta/creds/zc-kept")
    installed.write_bytes(b"someone else's value\n")  # same mode, owner, generation and marker: only the value
    verify = ccli("creds", "verify", "zc-kept", "-i", inventory)
    assert verify.returncode == 2 and "value was changed on the node" in verify.stdout, verify
    health = ccli("health", "-i", inventory, "--limit", "lab-001", "--format", "json")
    finding = next(f for f in json.loads(health.stdout)["hosts"]["lab-001"]["findings"]
                   if f["check"] == "credential:zc-kept")
    assert health.returncode == 2 and finding["severity"] == "CRITICAL" and "changed on the node" in \
        finding["message"], finding
    fixed = json.loads(ccli("creds", "push", "zc-kept", "-i", inventory, "--format", "json", check_rc=0).stdout)
    assert fixed["hosts"]["lab-001"]["changed"] == 1
    assert installed.read_bytes() == b"confined-value-3f9a\n"
    ccli("creds", "verify", "zc-kept", "-i", inventory, check_rc=0)


def test_node_state_is_private(clab: Lab, ccli: CredCli, tmp_path: Path) -> None:
    play = tmp_path / "play.yml"
    play.write_text("hosts: lab-001\nsteps:\n"
                    "  - command: {cmd: 'echo to-stderr >&2; touch /tmp/zc-private', creates: /tmp/zc-private}\n"
                    "  - directory: {path: /var/tmp/zc-open}\n")
    for expected in (2, 0):
        result = ccli("deploy", str(play), "-i", str(clab.inventory), "--format", "json", check_rc=0)
        assert json.loads(result.stdout)["hosts"]["lab-001"]["changed"] == expected
    state = clab.node("lab-001").path("/var/lib/zeta/state")
    assert oct(state.stat().st_mode)[-3:] == "700"
    for name in ("last-run", "lock", "lock.owner", "lock.stderr"):
        assert oct((state / name).stat().st_mode)[-3:] == "600", name
    assert oct(clab.node("lab-001").path("/var/lib/zeta").stat().st_mode)[-3:] == "755"
    # the scripts still run with the login's own umask: a directory made without a mode is 0755
    assert oct(clab.node("lab-001").path("/var/tmp/zc-open").stat().st_mode)[-3:] == "755"
    home = ccli.home
    assert oct(home.stat().st_mode)[-3:] == "700"
    for run in (home / "runs").iterdir():
        assert oct(run.stat().st_mode)[-3:] == "700"
        for path in run.iterdir():
            assert oct(path.stat().st_mode)[-3:] == "600", path
