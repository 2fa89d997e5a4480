"""`zetactl creds` against real sshd lab nodes and the real `age` tool (issue 4).

Round trip and interop with `age`, the node's refusals (each with its own message, nothing installed;
an envelope edited after sealing and a format v1 one among them), fleet-wide rotation with nodes down,
a canary that must appear nowhere but on the node, and the rule that a value is never taken from the
command line.
"""

from __future__ import annotations

import grp
import hashlib
import json
import pwd
import re
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Cli, Result, _lab, needs_lab
from tests.e2e.canary import SITECUSTOMIZE, CmdlineSampler, CredCli, _hits, node_file
from zetactl.creds.envelope import Header, make_header, seal
from zetactl.lab import Lab
from zetactl.remote.runner import CHANNEL, LOCK_SESSION
from zetactl.secret import Secret

pytestmark = [needs_lab, pytest.mark.skipif(not shutil.which("age"), reason="needs the age tool")]

CREDS = "/run/zeta/creds"
STATE = "/var/lib/zeta/creds"


# -- helpers -------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def lab4(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    yield from _lab(tmp_path_factory.mktemp("credlab"), 4, subnet=80)


@pytest.fixture(scope="module")
def lab20(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    yield from _lab(tmp_path_factory.mktemp("credlab20"), 20, subnet=90)


@pytest.fixture
def ccli(tmp_path: Path) -> CredCli:
    return CredCli(tmp_path / "zetactl-home")


def marker(lab: Lab, host: str, name: str) -> dict[str, str]:
    """The node's persistent marker (read from the overlay's upper dir: works while the node is down)."""
    path = lab.dir / "nodes" / host / "upper" / STATE.lstrip("/") / f"{name}.meta"
    if not path.is_file():
        return {}
    return dict(line.split(" ", 1) for line in path.read_text().splitlines() if " " in line)


def generations(lab: Lab, host: str, name: str) -> list[str]:
    directory = lab.node(host).path(f"{CREDS}/.gen/{name}")
    return sorted(p.name for p in directory.iterdir()) if directory.is_dir() else []


def leftovers(lab: Lab, host: str) -> list[str]:
    """Work directories of the install script (opened plaintext) still on the node."""
    directory = lab.node(host).path(f"{CREDS}/.in")
    return sorted(p.name for p in directory.iterdir()) if directory.is_dir() else []


def host_key(lab: Lab, host: str) -> Path:
    return lab.dir / "nodes" / host / "upper" / "etc" / "ssh" / "ssh_host_ed25519_key"


def host_pub(lab: Lab, host: str) -> str:
    return " ".join(host_key(lab, host).with_suffix(".pub").read_text().split()[:2])


def record(cli: Cli, name: str) -> dict[str, Any]:
    return json.loads((cli.home / "creds" / name / "credential.json").read_text())


def store_envelope(cli: Cli, name: str, generation: int, host: str) -> Path:
    return cli.home / "creds" / name / str(generation) / f"{host}.age"


def set_digest(cli: Cli, name: str, host: str, digest: str) -> None:
    path = cli.home / "creds" / name / "credential.json"
    data = json.loads(path.read_text())
    data["hosts"][host]["digest"] = digest
    path.write_text(json.dumps(data, indent=1) + "\n")


def push(cli: CredCli, lab: Lab, *args: str, rc: int | None = 0) -> dict[str, Any]:
    result = cli("creds", "push", *args, "-i", str(lab.inventory), "--format", "json")
    if rc is not None:
        assert result.returncode == rc, result
    doc: dict[str, Any] = result.json()
    return doc


def changed(doc: dict[str, Any]) -> dict[str, int]:
    return {h: int(d["changed"]) for h, d in doc["hosts"].items()}


def step_error(doc: dict[str, Any], host: str) -> str:
    hostdoc = doc["hosts"][host]
    return hostdoc["error"] + " | " + " | ".join(s["error"] for s in hostdoc["steps"])


def seal_cli(cli: CredCli, lab: Lab, name: str, value_file: Path, *args: str, hosts: str | None = None,
             rc: int = 0) -> Result:
    extra = ["--hosts", hosts] if hosts else []
    return cli("creds", "seal", name, *extra, "-i", str(lab.inventory), "--from-file", str(value_file), *args,
               check_rc=rc)


# -- 1. round trip and interop ---------------------------------------------------------------------
def test_round_trip_byte_exact_with_mode_and_owner_then_nothing_to_do(lab4: Lab, ccli: CredCli,
                                                                      tmp_path: Path) -> None:
    value = b"tok\x00en\xff\xfe \n  trailing newline kept\n"
    source = tmp_path / "value.bin"
    source.write_bytes(value)
    seal_cli(ccli, lab4, "rt-token", source, "--mode", "0440", "--owner", "nobody", "--group", "nogroup",
             "--expires", "12h", hosts="lab-00[1-3]")
    first = push(ccli, lab4, "rt-token")
    assert changed(first) == {"lab-001": 1, "lab-002": 1, "lab-003": 1}, first
    assert all(h["status"] == "changed" for h in first["hosts"].values())
    second = push(ccli, lab4, "rt-token")
    assert changed(second) == {"lab-001": 0, "lab-002": 0, "lab-003": 0}, second
    assert all(h["status"] == "ok" for h in second["hosts"].values()), second
    check = ccli("creds", "push", "rt-token", "-i", str(lab4.inventory), "--check", "--diff", check_rc=0)
    assert "--- lab-" not in check.stdout and "generation" not in check.stdout, check  # no diff: nothing to do
    nobody, nogroup = pwd.getpwnam("nobody").pw_uid, grp.getgrnam("nogroup").gr_gid
    for host in ("lab-001", "lab-002", "lab-003"):
        link = lab4.node(host).path(f"{CREDS}/rt-token")
        assert link.is_symlink()
        installed = node_file(lab4, host, f"{CREDS}/rt-token")
        assert installed.read_bytes() == value, host
        status = installed.stat()
        assert (status.st_mode & 0o7777, status.st_uid, status.st_gid) == (0o440, nobody, nogroup), host
        meta = marker(lab4, host, "rt-token")
        assert meta["generation"] == "1" and meta["digest"] == record(ccli, "rt-token")["hosts"][host]["digest"]
        assert generations(lab4, host, "rt-token") == ["1"]
        assert leftovers(lab4, host) == []  # the opened plaintext was removed
    assert not lab4.node("lab-004").path(f"{CREDS}/rt-token").exists()  # not sealed for it, never sent
    assert record(ccli, "rt-token")["state"] == "complete"


def test_envelope_from_the_store_opens_with_the_age_tool(lab4: Lab, ccli: CredCli, tmp_path: Path) -> None:
    value = b"interop-" + uuid.uuid4().hex.encode() + b"\n"
    (tmp_path / "v").write_bytes(value)
    seal_cli(ccli, lab4, "io-out", tmp_path / "v", hosts="lab-002")
    envelope = store_envelope(ccli, "io-out", 1, "lab-002")
    assert value not in envelope.read_bytes()  # ciphertext
    opened = subprocess.run(["age", "-d", "-i", str(host_key(lab4, "lab-002")), str(envelope)],
                            capture_output=True, check=True).stdout
    assert opened.startswith(b"zeta-credential v2\nnode lab-002\nname io-out\ngeneration 1\n"), opened[:200]
    assert opened.endswith(b"\n\n" + value)
    # another node's key cannot open it
    wrong = subprocess.run(["age", "-d", "-i", str(host_key(lab4, "lab-003")), str(envelope)],
                           capture_output=True)
    assert wrong.returncode != 0 and b"no identity matched" in wrong.stderr


def test_envelope_made_with_the_age_tool_is_accepted_by_the_node(lab4: Lab, ccli: CredCli,
                                                                 tmp_path: Path) -> None:
    (tmp_path / "v1").write_bytes(b"first value")
    seal_cli(ccli, lab4, "io-in", tmp_path / "v1", hosts="lab-001")
    push(ccli, lab4, "io-in")
    (tmp_path / "v2").write_bytes(b"placeholder, replaced below")
    seal_cli(ccli, lab4, "io-in", tmp_path / "v2")
    # the operator builds generation 2 by hand: zetactl's header + the value, encrypted by `age -r`
    value = b"made-with-age-cli " + uuid.uuid4().hex.encode()
    header = make_header("lab-001", "io-in", 2, Secret(value), not_after=0, path=f"{CREDS}/io-in")
    made = subprocess.run(["age", "-r", host_pub(lab4, "lab-001")], input=header.render() + value,
                          capture_output=True, check=True).stdout
    assert made.startswith(b"age-encryption.org/v1\n")
    store_envelope(ccli, "io-in", 2, "lab-001").write_bytes(made)
    set_digest(ccli, "io-in", "lab-001", header.digest)
    first = push(ccli, lab4, "io-in")
    assert changed(first) == {"lab-001": 1}, first
    assert node_file(lab4, "lab-001", f"{CREDS}/io-in").read_bytes() == value
    assert marker(lab4, "lab-001", "io-in")["generation"] == "2"
    assert push(ccli, lab4, "io-in")["hosts"]["lab-001"]["status"] == "ok"


def test_store_directories_are_private(lab4: Lab, ccli: CredCli, tmp_path: Path) -> None:
    (tmp_path / "v").write_bytes(b"x")
    seal_cli(ccli, lab4, "perm-check", tmp_path / "v", hosts="lab-001")
    envelope = store_envelope(ccli, "perm-check", 1, "lab-001")
    assert envelope.stat().st_mode & 0o777 == 0o600
    for directory in (ccli.home / "creds", ccli.home / "creds" / "perm-check", envelope.parent):
        assert directory.stat().st_mode & 0o777 == 0o700, directory


# -- 2. refusals -----------------------------------------------------------------------------------
def _install_first(ccli: CredCli, lab: Lab, tmp_path: Path, name: str, hosts: str, value: bytes) -> None:
    (tmp_path / f"{name}.v1").write_bytes(value)
    seal_cli(ccli, lab, name, tmp_path / f"{name}.v1", hosts=hosts)
    push(ccli, lab, name)


def _seal_next(ccli: CredCli, lab: Lab, tmp_path: Path, name: str, value: bytes, *args: str) -> int:
    path = tmp_path / f"{name}.next"
    path.write_bytes(value)
    seal_cli(ccli, lab, name, path, *args)
    return int(record(ccli, name)["generation"])


def _assert_refused(ccli: CredCli, lab: Lab, name: str, host: str, old_value: bytes, old_generation: int,
                    *messages: str) -> None:
    doc = push(ccli, lab, name, rc=2)
    assert doc["hosts"][host]["status"] == "failed", doc
    error = step_error(doc, host)
    assert "refused: " in error, error
    for message in messages:
        assert message in error, error
    # nothing installed: the previous value, generation and marker stay; no plaintext left behind
    assert node_file(lab, host, f"{CREDS}/{name}").read_bytes() == old_value
    assert marker(lab, host, name)["generation"] == str(old_generation)
    assert generations(lab, host, name) == [str(old_generation)]
    assert leftovers(lab, host) == []
    # and again: still refused, still untouched (a refusal is not a one-off)
    again = push(ccli, lab, name, rc=2)
    assert again["hosts"][host]["status"] == "failed"
    assert node_file(lab, host, f"{CREDS}/{name}").read_bytes() == old_value


def test_refuses_another_nodes_envelope(lab4: Lab, ccli: CredCli, tmp_path: Path) -> None:
    _install_first(ccli, lab4, tmp_path, "rf-node", "lab-00[23]", b"old value")
    generation = _seal_next(ccli, lab4, tmp_path, "rf-node", b"new value")
    shutil.copy(store_envelope(ccli, "rf-node", generation, "lab-002"),
                store_envelope(ccli, "rf-node", generation, "lab-003"))
    doc = push(ccli, lab4, "rf-node", rc=2)
    assert doc["hosts"]["lab-002"]["status"] == "changed"  # its own envelope still goes in
    assert node_file(lab4, "lab-002", f"{CREDS}/rf-node").read_bytes() == b"new value"
    _assert_refused(ccli, lab4, "rf-node", "lab-003", b"old value", 1,
                    "cannot open the envelope with this node's host key", "no identity matched")


def test_refuses_an_envelope_bound_to_another_node_id(lab4: Lab, ccli: CredCli, tmp_path: Path) -> None:
    # readable by lab-003 (sealed to its key) but the header binds it to lab-002
    _install_first(ccli, lab4, tmp_path, "rf-bind", "lab-003", b"old value")
    generation = _seal_next(ccli, lab4, tmp_path, "rf-bind", b"new value")
    value = Secret(b"new value")
    header = make_header("lab-002", "rf-bind", generation, value, not_after=0, path=f"{CREDS}/rf-bind")
    store_envelope(ccli, "rf-bind", generation, "lab-003").write_bytes(
        seal(header, value, [host_pub(lab4, "lab-003")]))
    _assert_refused(ccli, lab4, "rf-bind", "lab-003", b"old value", 1,
                    "sealed for node 'lab-002', this node is 'lab-003'")


def test_refuses_an_envelope_of_another_credential(lab4: Lab, ccli: CredCli, tmp_path: Path) -> None:
    _install_first(ccli, lab4, tmp_path, "rf-name-b", "lab-003", b"value of b")
    (tmp_path / "a").write_bytes(b"value of a")
    seal_cli(ccli, lab4, "rf-name-a", tmp_path / "a", hosts="lab-003")
    generation = _seal_next(ccli, lab4, tmp_path, "rf-name-b", b"new value of b")
    shutil.copy(store_envelope(ccli, "rf-name-a", 1, "lab-003"),
                store_envelope(ccli, "rf-name-b", generation, "lab-003"))
    _assert_refused(ccli, lab4, "rf-name-b", "lab-003", b"value of b", 1,
                    "the envelope holds credential 'rf-name-a', not 'rf-name-b'")
    assert not lab4.node("lab-003").path(f"{CREDS}/rf-name-a").exists()


def test_refuses_an_expired_envelope(lab4: Lab, ccli: CredCli, tmp_path: Path) -> None:
    _install_first(ccli, lab4, tmp_path, "rf-expired", "lab-003", b"old value")
    generation = _seal_next(ccli, lab4, tmp_path, "rf-expired", b"new value")
    value = Secret(b"new value")
    past = int(time.time()) - 3600
    header = make_header("lab-003", "rf-expired", generation, value, not_after=past,
                         path=f"{CREDS}/rf-expired")
    store_envelope(ccli, "rf-expired", generation, "lab-003").write_bytes(
        seal(header, value, [host_pub(lab4, "lab-003")]))
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(past))
    _assert_refused(ccli, lab4, "rf-expired", "lab-003", b"old value", 1, f"expired at {when} UTC")


def test_refuses_a_replayed_older_generation(lab4: Lab, ccli: CredCli, tmp_path: Path) -> None:
    _install_first(ccli, lab4, tmp_path, "rf-replay", "lab-003", b"generation one")
    saved = store_envelope(ccli, "rf-replay", 1, "lab-003").read_bytes()
    assert _seal_next(ccli, lab4, tmp_path, "rf-replay", b"generation two") == 2
    assert changed(push(ccli, lab4, "rf-replay")) == {"lab-003": 1}
    assert node_file(lab4, "lab-003", f"{CREDS}/rf-replay").read_bytes() == b"generation two"
    kept = generations(lab4, "lab-003", "rf-replay")
    assert kept == ["1", "2"]  # the previous generation stays until retired
    # the controller pushes generation 3; an attacker swapped in the saved generation-1 envelope
    assert _seal_next(ccli, lab4, tmp_path, "rf-replay", b"generation three") == 3
    store_envelope(ccli, "rf-replay", 3, "lab-003").write_bytes(saved)
    doc = push(ccli, lab4, "rf-replay", rc=2)
    assert "generation 1 is older than the installed generation 2" in step_error(doc, "lab-003"), doc
    assert node_file(lab4, "lab-003", f"{CREDS}/rf-replay").read_bytes() == b"generation two"
    assert marker(lab4, "lab-003", "rf-replay")["generation"] == "2"
    assert generations(lab4, "lab-003", "rf-replay") == kept
    assert leftovers(lab4, "lab-003") == []


def test_refuses_a_truncated_envelope(lab4: Lab, ccli: CredCli, tmp_path: Path) -> None:
    _install_first(ccli, lab4, tmp_path, "rf-trunc", "lab-003", b"old value")
    generation = _seal_next(ccli, lab4, tmp_path, "rf-trunc", b"new value " * 20)
    path = store_envelope(ccli, "rf-trunc", generation, "lab-003")
    data = path.read_bytes()
    path.write_bytes(data[: data.index(b"\n--- ") + 8])  # cut inside the age header (its MAC line)
    _assert_refused(ccli, lab4, "rf-trunc", "lab-003", b"old value", 1, "cannot open the envelope",
                    "failed to read header")
    path.write_bytes(data[: len(data) - 40])  # header intact, the payload's last chunk cut
    _assert_refused(ccli, lab4, "rf-trunc", "lab-003", b"old value", 1, "cannot open the envelope",
                    "failed to decrypt and authenticate payload chunk")


def test_refuses_a_bit_flipped_envelope(lab4: Lab, ccli: CredCli, tmp_path: Path) -> None:
    _install_first(ccli, lab4, tmp_path, "rf-flip", "lab-003", b"old value")
    generation = _seal_next(ccli, lab4, tmp_path, "rf-flip", b"new value " * 20)
    path = store_envelope(ccli, "rf-flip", generation, "lab-003")
    data = bytearray(path.read_bytes())
    data[-30] ^= 0x01  # one bit of the encrypted payload
    path.write_bytes(bytes(data))
    _assert_refused(ccli, lab4, "rf-flip", "lab-003", b"old value", 1, "cannot open the envelope",
                    "failed to decrypt and authenticate payload chunk")


def test_refuses_an_owner_that_does_not_exist(lab4: Lab, ccli: CredCli, tmp_path: Path) -> None:
    _install_first(ccli, lab4, tmp_path, "rf-owner", "lab-003", b"old value")
    _seal_next(ccli, lab4, tmp_path, "rf-owner", b"new value", "--owner", "zeta-nosuchuser")
    _assert_refused(ccli, lab4, "rf-owner", "lab-003", b"old value", 1,
                    "owner zeta-nosuchuser:root does not exist on this node")


def test_node_refuses_a_header_path_outside_its_areas(lab4: Lab, ccli: CredCli, tmp_path: Path) -> None:
    _install_first(ccli, lab4, tmp_path, "rf-path", "lab-004", b"old value")
    generation = _seal_next(ccli, lab4, tmp_path, "rf-path", b"new value")
    value = Secret(b"new value")
    good = make_header("lab-004", "rf-path", generation, value, not_after=0, path=f"{CREDS}/rf-path")
    # bound (its digest recomputed): whoever can seal to the host key can write any header; the node's own
    # checks are what keep the value in /run
    evil = Header(**{**good.__dict__, "path": "/etc/zeta-cred-escape"}).bound(value)
    store_envelope(ccli, "rf-path", generation, "lab-004").write_bytes(seal(evil, value, [host_pub(lab4, "lab-004")]))
    doc = push(ccli, lab4, "rf-path", rc=None)
    escaped = lab4.node("lab-004").path("/etc/zeta-cred-escape")
    assert not escaped.is_symlink() and not escaped.exists(), doc
    assert doc["hosts"]["lab-004"]["status"] == "failed"
    assert "refused: path /etc/zeta-cred-escape is outside this node's credential areas (/run/zeta/creds" in \
        step_error(doc, "lab-004"), doc


def _age_to(lab: Lab, host: str, plaintext: bytes) -> bytes:
    return subprocess.run(["age", "-r", host_pub(lab, host)], input=plaintext, capture_output=True,
                          check=True).stdout


def test_node_refuses_an_envelope_edited_after_sealing(lab4: Lab, ccli: CredCli, tmp_path: Path) -> None:
    """The plaintext of a sealed envelope, one header field (or one value byte) edited in canonical form and
    sealed again with the age tool: every field is well formed, only the digest no longer covers it."""
    _install_first(ccli, lab4, tmp_path, "rf-edit", "lab-002", b"old value")
    generation = _seal_next(ccli, lab4, tmp_path, "rf-edit", b"new value!")
    path = store_envelope(ccli, "rf-edit", generation, "lab-002")
    plain = subprocess.run(["age", "-d", "-i", str(host_key(lab4, "lab-002")), str(path)], capture_output=True,
                           check=True).stdout
    assert plain.startswith(b"zeta-credential v2\n") and plain.endswith(b"\n\nnew value!")
    edits = {  # a looser mode, a replayed generation bumped above the installed one, another path, another value
        "mode": (b"\nmode 0400\n", b"\nmode 0440\n"),
        "generation": (f"\ngeneration {generation}\n".encode(), f"\ngeneration {generation + 5}\n".encode()),
        "path": (b"\npath /run/zeta/creds/rf-edit\n", b"\npath /run/zeta/creds/rf-edix\n"),
        "value": (b"\n\nnew value!", b"\n\nnew value?"),
    }
    for field, (old, new) in edits.items():
        assert plain.count(old) == 1, field
        path.write_bytes(_age_to(lab4, "lab-002", plain.replace(old, new)))
        _assert_refused(ccli, lab4, "rf-edit", "lab-002", b"old value", 1, "refused: the header or the value does not "
                        "match the envelope's digest (edited or damaged after sealing)")
        assert not lab4.node("lab-002").path(f"{CREDS}/rf-edix").exists()
    # the plaintext as sealed, encrypted again by the age tool: accepted (the digest is about the plaintext)
    path.write_bytes(_age_to(lab4, "lab-002", plain))
    assert changed(push(ccli, lab4, "rf-edit")) == {"lab-002": 1}
    assert node_file(lab4, "lab-002", f"{CREDS}/rf-edit").read_bytes() == b"new value!"
    assert marker(lab4, "lab-002", "rf-edit")["digest"] == record(ccli, "rf-edit")["hosts"]["lab-002"]["digest"]
    assert changed(push(ccli, lab4, "rf-edit")) == {"lab-002": 0}


def _v1_plain(node: str, name: str, generation: int, value: bytes) -> bytes:
    """A plaintext as zetactl sealed it before format 2 (its digest over the salt and the value only)."""
    salt = uuid.uuid4().hex
    lines = ["zeta-credential v1", f"node {node}", f"name {name}", f"generation {generation}",
             f"created {int(time.time())}", "not-after 0", f"salt {salt}",
             f"digest {hashlib.sha256(salt.encode() + value).hexdigest()}", f"path {CREDS}/{name}", "mode 0400",
             "owner root", "group root", "units ", f"length {len(value)}"]
    return ("\n".join(lines) + "\n\n").encode() + value


def test_format_v1_envelopes_are_refused_until_resealed(lab4: Lab, ccli: CredCli, tmp_path: Path) -> None:
    _install_first(ccli, lab4, tmp_path, "rf-v1", "lab-001", b"old value")
    generation = _seal_next(ccli, lab4, tmp_path, "rf-v1", b"new value")
    envelope = store_envelope(ccli, "rf-v1", generation, "lab-001")
    envelope.write_bytes(_age_to(lab4, "lab-001", _v1_plain("lab-001", "rf-v1", generation, b"new value")))
    # the node refuses a v1 envelope whatever the controller's record says
    _assert_refused(ccli, lab4, "rf-v1", "lab-001", b"old value", 1, "refused: envelope format v1, sealed by an "
                    "older zetactl (its header is not bound to its digest): reseal it with zetactl creds rotate "
                    "rf-v1 --from-file FILE")
    # a record written by an older zetactl (no format: its envelopes are v1): refused before any host is touched
    data = record(ccli, "rf-v1")
    del data["format"]
    (ccli.home / "creds" / "rf-v1" / "credential.json").write_text(json.dumps(data, indent=1) + "\n")
    runs = ccli.run_ids()
    for command in (["push", "rf-v1"], ["verify", "rf-v1"], ["rotate", "rf-v1"]):
        refused = ccli("creds", *command, "-i", str(lab4.inventory))
        assert refused.returncode == 4, refused
        assert f"credential 'rf-v1' generation {generation} was sealed by an older zetactl (envelope format v1, " \
               "whose header is not bound to its digest): reseal it with `zetactl creds rotate rf-v1 --from-file " \
               "FILE`" in refused.stderr, refused
        assert "Traceback" not in refused.stderr
    assert ccli.run_ids() == runs  # no run started
    assert "warning: credential 'rf-v1'" in ccli("creds", "list", "-i", str(lab4.inventory), check_rc=0).stderr
    # the way out: the value again, resealed in format 2, pushed, the old generations retired
    (tmp_path / "again").write_bytes(b"resealed value")
    rotated = ccli("creds", "rotate", "rf-v1", "-i", str(lab4.inventory), "--from-file", str(tmp_path / "again"),
                   "--format", "json", check_rc=0)
    assert changed(rotated.json()) == {"lab-001": 1}
    assert record(ccli, "rf-v1")["format"] == 2 and record(ccli, "rf-v1")["generation"] == generation + 1
    assert node_file(lab4, "lab-001", f"{CREDS}/rf-v1").read_bytes() == b"resealed value"
    assert generations(lab4, "lab-001", "rf-v1") == [str(generation + 1)]
    assert changed(push(ccli, lab4, "rf-v1")) == {"lab-001": 0}
    ccli("creds", "verify", "rf-v1", "-i", str(lab4.inventory), check_rc=0)


# -- 3. rotation across 20 nodes with 2 down -------------------------------------------------------
def test_rotation_across_twenty_nodes_with_two_down(lab20: Lab, ccli: CredCli, tmp_path: Path) -> None:
    hosts = [n.name for n in lab20.nodes()]
    assert len(hosts) == 20
    down = ["lab-005", "lab-017"]
    up = [h for h in hosts if h not in down]
    inv = str(lab20.inventory)
    (tmp_path / "old").write_bytes(b"old-" + uuid.uuid4().hex.encode())
    (tmp_path / "new").write_bytes(b"new-" + uuid.uuid4().hex.encode())
    old, new = (tmp_path / "old").read_bytes(), (tmp_path / "new").read_bytes()
    seal_cli(ccli, lab20, "fleet-tok", tmp_path / "old", hosts="all")
    assert set(changed(push(ccli, lab20, "fleet-tok")).values()) == {1}
    assert set(changed(push(ccli, lab20, "fleet-tok")).values()) == {0}
    for host in down:
        lab20.stop_node(host)
    try:
        rotated = ccli("creds", "rotate", "fleet-tok", "-i", inv, "--from-file", str(tmp_path / "new"),
                       "--format", "json")
        assert rotated.returncode == 3, rotated
        doc = rotated.json()
        assert {h: d["status"] for h, d in doc["hosts"].items() if d["status"] == "unreachable"} == \
            dict.fromkeys(down, "unreachable")
        assert all(doc["hosts"][h]["status"] == "changed" for h in up), doc
        assert "lab-005, lab-017" in rotated.stderr and "rotate fleet-tok" in rotated.stderr
        for host in up:
            assert node_file(lab20, host, f"{CREDS}/fleet-tok").read_bytes() == new, host
            assert generations(lab20, host, "fleet-tok") == ["2"], host  # generation 1 retired
            assert marker(lab20, host, "fleet-tok")["generation"] == "2"
        for host in down:  # still on the old generation (/run is gone with the node, the marker stays)
            assert marker(lab20, host, "fleet-tok")["generation"] == "1", host
            kept = lab20.dir / "nodes" / host / "upper" / STATE.lstrip("/") / "fleet-tok.age"
            opened = subprocess.run(["age", "-d", "-i", str(host_key(lab20, host)), str(kept)],
                                    capture_output=True, check=True).stdout
            assert opened.endswith(b"\n\n" + old) and b"\ngeneration 1\n" in opened
        assert record(ccli, "fleet-tok")["state"] == "pending"
        listed = ccli("creds", "list", "--live", "-i", inv, "--format", "json", check_rc=0).json()
        on_node = {r["host"]: r["on_node"] for r in listed["credentials"]}
        assert on_node == {h: ("unreachable" if h in down else "generation 2") for h in hosts}, on_node
    finally:
        for host in down:
            lab20.start_node(host)
    for host in down:  # back after a reboot: the marker still says generation 1
        assert marker(lab20, host, "fleet-tok")["generation"] == "1"
    before = {h: marker(lab20, h, "fleet-tok")["installed"] for h in up}
    runs_before = set(ccli.run_ids())
    again = ccli("creds", "rotate", "fleet-tok", "-i", inv, "--format", "json")
    assert again.returncode == 0, again
    assert "continuing the rotation of fleet-tok to generation 2" in again.stderr
    doc = again.json()
    assert {h: d["status"] for h, d in doc["hosts"].items()} == \
        {h: ("changed" if h in down else "ok") for h in hosts}, doc
    assert changed(doc) == {h: int(h in down) for h in hosts}
    for host in hosts:
        assert node_file(lab20, host, f"{CREDS}/fleet-tok").read_bytes() == new, host
        assert generations(lab20, host, "fleet-tok") == ["2"], host
        assert marker(lab20, host, "fleet-tok")["generation"] == "2"
    assert {h: marker(lab20, h, "fleet-tok")["installed"] for h in up} == before  # the 18 were not touched
    # the journal of the continuing push: nothing applied on the 18
    new_runs = sorted(set(ccli.run_ids()) - runs_before)
    assert doc["run_id"] in new_runs
    applied = {e.get("host") for e in ccli.journal(doc["run_id"]) if e.get("state") in ("applied", "verified")}
    assert applied == set(down), applied
    assert record(ccli, "fleet-tok")["state"] == "complete"
    ccli("creds", "verify", "-i", inv, check_rc=0)
    nothing = ccli("creds", "rotate", "fleet-tok", "-i", inv)
    assert nothing.returncode == 4 and "already everywhere" in nothing.stderr, nothing


# -- 4. the canary ---------------------------------------------------------------------------------
def test_canary_appears_nowhere_but_on_the_node(lab4: Lab, tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(SITECUSTOMIZE)
    debug_log = tmp_path / "debug.log"
    home = tmp_path / "zetactl-home"
    cli = CredCli(home, {"PYTHONPATH": str(site), "CREDTEST_DEBUG_LOG": str(debug_log)})
    inv = str(lab4.inventory)
    canaries = [f"canary-{uuid.uuid4()}".encode() for _ in range(4)]
    values = tmp_path / "values"  # the sources, outside ZETACTL_HOME
    values.mkdir()
    for i, canary in enumerate(canaries):
        (values / f"c{i}").write_bytes(canary)
    sampler = CmdlineSampler(lab4)
    sampler.start()
    try:
        # mint and seal (from stdin), push twice, check + diff
        cli("creds", "seal", "cn-token", "--hosts", "all", "-i", inv, "--stdin", "--unit", "zeta-otto.service",
            input=canaries[0], check_rc=0)
        assert set(changed(push(cli, lab4, "cn-token")).values()) == {1}
        assert set(changed(push(cli, lab4, "cn-token")).values()) == {0}
        cli("creds", "push", "-i", inv, "--check", "--diff", check_rc=0)
        # rotate to a second canary, then --check --diff shows a pending change (names and digests only)
        cli("creds", "rotate", "cn-token", "-i", inv, "--from-file", str(values / "c1"), check_rc=0)
        cli("creds", "seal", "cn-token", "-i", inv, "--from-file", str(values / "c2"), check_rc=0)
        diff = cli("creds", "push", "-i", inv, "--check", "--diff", check_rc=0)
        assert "cn-token: generation 2 -> 3; digest" in diff.stdout, diff
        cli("creds", "push", "-i", inv, "--check", "--diff", "--format", "json", check_rc=0)
        # a push that fails mid-way: one node down, one refusal on another node
        cli("creds", "seal", "cn-bad", "--hosts", "lab-00[12]", "-i", inv, "--from-file", str(values / "c3"),
            "--owner", "zeta-nosuchuser", check_rc=0)
        lab4.stop_node("lab-004")
        try:
            failed = cli("creds", "push", "-i", inv, "--diff")
            assert failed.returncode == 2, failed
            cli("creds", "list", "--live", "-i", inv, check_rc=0)
            assert cli("creds", "verify", "-i", inv).returncode in (2, 3)
            cli("creds", "rotate", "cn-token", "-i", inv, "--from-file", str(values / "c3"), "--format", "json")
        finally:
            lab4.start_node("lab-004")
        cli("creds", "rotate", "cn-token", "-i", inv, check_rc=0)
        cli("creds", "list", "--live", "-i", inv, "--format", "json", check_rc=0)
        cli("creds", "verify", "cn-token", "-i", inv, check_rc=0)
        for run_id in cli.run_ids():
            cli("runs", "show", run_id, "--events", "--format", "json")
    finally:
        sampler.stop.set()
        sampler.join()

    # positive controls: the search works and the capture worked
    for host in ("lab-001", "lab-002", "lab-003", "lab-004"):
        assert node_file(lab4, host, f"{CREDS}/cn-token").read_bytes() == canaries[3]
        assert _hits(lab4.node(host).path(f"{CREDS}/.gen/cn-token"), [canaries[3]]), host
    log_text = debug_log.read_text()
    assert "asyncssh" in log_text and "  Command: " in log_text, log_text[:2000]
    commands = [line.split("  Command: ", 1)[1] for line in log_text.splitlines() if "  Command: " in line]
    assert any(LOCK_SESSION.text in c for c in commands), commands[:20]
    assert any(CHANNEL.text.startswith(c) for c in commands), commands[:20]
    assert any("flock" in c for c in sampler.seen), sorted(sampler.seen)[:40]

    hits = [f"output #{i}" for i, text in enumerate(cli.outputs) for c in canaries if c.decode() in text]
    hits += [f"remote command line (controller log): {c}" for c in commands for k in canaries if k.decode() in c]
    hits += [f"remote command line (node): {c}" for c in sampler.seen for k in canaries if k.decode() in c]
    hits += _hits(home, canaries)  # records, envelopes, playbooks, journals
    hits += _hits(tmp_path, canaries, skip=(values, home))  # the debug log
    for node in lab4.nodes():
        node_dir = lab4.dir / "nodes" / node.name
        hits += _hits(node_dir, canaries)  # sshd.log and every persistent tree (/etc /var /nix)
        hits += _hits(node.path("/run"), canaries, skip=(node.path(f"{CREDS}/.gen"), node.path("/run/zeta-lab")))
        hits += _hits(node.path("/tmp"), canaries)
    assert not hits, hits


# -- 5. never a value on the command line ----------------------------------------------------------
def test_seal_without_a_value_source_and_no_terminal_refuses(lab4: Lab, ccli: CredCli) -> None:
    inv = str(lab4.inventory)
    result = ccli("creds", "seal", "cl-token", "--hosts", "lab-001", "-i", inv)  # stdin: /dev/null
    assert result.returncode == 4, result
    assert "no value: use --from-file FILE, --stdin, or run on a terminal to be prompted" in result.stderr
    assert not (ccli.home / "creds" / "cl-token").exists()
    helptext = ccli("creds", "seal", "--help", check_rc=0).stdout
    options = set(re.findall(r"--[a-z][a-z-]+", helptext))
    assert {"--from-file", "--stdin"} <= options, options
    assert not options & {"--value", "--secret", "--password", "--token", "--data", "--content"}, options
    for command in (["seal", "cl-token", "--hosts", "lab-001"], ["rotate", "cl-token"]):
        rejected = ccli("creds", *command, "-i", inv, "--value", "canary-on-argv")
        assert rejected.returncode == 4, rejected
        assert "No such option: --value" in rejected.stderr, rejected
        assert "canary-on-argv" not in rejected.stdout + rejected.stderr
    assert not (ccli.home / "creds" / "cl-token").exists()
