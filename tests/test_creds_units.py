"""Envelopes, the Secret type and passphrase blobs, without a lab: every mutation is refused."""

from __future__ import annotations

import copy
import json
import os
import pickle
import shutil
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tests.conftest import Cli
from zetactl.creds.envelope import (
    EnvelopeError,
    make_header,
    open_passphrase,
    open_with_identity,
    parse,
    read_passphrase_file,
    seal,
    seal_passphrase,
)
from zetactl.errors import BadInput
from zetactl.secret import PLACEHOLDER, RedactingFilter, Secret

VALUE = Secret(b"ghp_unit-test-value\n\x00binary\xff")


@pytest.fixture
def node_key(tmp_path: Path) -> tuple[Path, str]:
    key = Ed25519PrivateKey.generate()
    private = tmp_path / "host_key"
    private.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                          serialization.NoEncryption()))
    private.chmod(0o600)
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    return private, public.decode()


def test_secret_never_shows_or_serialises_itself() -> None:
    secret = Secret("hunter2-canary")
    shown = [repr(secret), str(secret), f"{secret}", f"{secret!s:>20}", "%s" % secret]  # noqa: UP031
    assert all("hunter2" not in text and PLACEHOLDER in text for text in shown), shown
    for leak in (lambda: json.dumps({"v": secret}), lambda: pickle.dumps(secret), lambda: copy.deepcopy(secret)):
        with pytest.raises(TypeError):
            leak()
    with pytest.raises(AttributeError):
        secret._value = b"x"  # type: ignore[misc]
    assert secret.reveal() == b"hunter2-canary" and secret == Secret("hunter2-canary")
    with pytest.raises(ValueError):
        Secret(b"")


def test_logging_backstop_replaces_known_secret_values() -> None:
    import logging

    Secret("canary-in-a-log-line")
    record = logging.LogRecord("x", logging.INFO, "f", 1, "sent %s to node", ("canary-in-a-log-line",), None)
    RedactingFilter().filter(record)
    assert record.getMessage() == f"sent {PLACEHOLDER} to node"


def test_envelope_round_trips_byte_for_byte_and_opens_with_the_age_tool(node_key: tuple[Path, str],
                                                                        tmp_path: Path) -> None:
    private, public = node_key
    made = make_header("lab-001", "gh-token", 3, VALUE, not_after=0, path="/run/zeta/creds/gh-token")
    envelope = seal(made, VALUE, [public])
    opened_header, opened = open_with_identity(envelope, str(private))
    assert opened == VALUE and opened_header == made
    if shutil.which("age"):
        (tmp_path / "e.age").write_bytes(envelope)
        plain = subprocess.run(["age", "-d", "-i", str(private), str(tmp_path / "e.age")], capture_output=True,
                               check=True).stdout
        assert plain == made.render() + VALUE.reveal()
        # and the other way: an envelope made by the age tool is accepted
        made_by_age = subprocess.run(["age", "-r", public], input=plain, capture_output=True, check=True).stdout
        assert open_with_identity(made_by_age, str(private))[1] == VALUE


def test_another_nodes_key_cannot_open_it(node_key: tuple[Path, str], tmp_path: Path) -> None:
    other = Ed25519PrivateKey.generate()
    (tmp_path / "other").write_bytes(other.private_bytes(serialization.Encoding.PEM,
                                                         serialization.PrivateFormat.OpenSSH,
                                                         serialization.NoEncryption()))
    made = make_header("lab-001", "gh-token", 3, VALUE, not_after=0, path="/run/zeta/creds/gh-token")
    with pytest.raises(EnvelopeError, match="cannot open"):
        open_with_identity(seal(made, VALUE, [node_key[1]]), str(tmp_path / "other"))


@pytest.mark.parametrize("mutate", [
    lambda p: p[:-1],  # truncated value
    lambda p: p + b"x",  # extra byte
    lambda p: p.replace(b"generation 3", b"generation 4"),  # header edited: digest still binds? length ok
    lambda p: p.replace(b"zeta-credential v1", b"zeta-credential v2"),
    lambda p: p.replace(b"\nmode 0400", b"\nmode 0400\nmode 0400"),  # repeated field
    lambda p: p.replace(b"\nunits ", b"\nextra x\nunits "),  # unknown field
    lambda p: p.replace(b"length ", b"length  "),  # non-canonical
    lambda p: p.replace(b"\n\n", b"\n", 1),  # no header end
    lambda p: p[: p.index(b"\n\n") + 2] + bytes([p[p.index(b"\n\n") + 2] ^ 1]) + p[p.index(b"\n\n") + 3:],  # bit flip
])
def test_every_mutation_of_the_plaintext_is_refused(mutate: object) -> None:
    made = make_header("lab-001", "gh-token", 3, VALUE, not_after=0, path="/run/zeta/creds/gh-token")
    plain = made.render() + VALUE.reveal()
    assert parse(plain)[1] == VALUE
    mutated = mutate(plain)  # type: ignore[operator]
    if b"generation 4" in mutated:  # a well-formed header parses: age (AEAD) stops edits in transit, the node
        # checks node, name, expiry and generation; who may deliver is decided by the SSH login
        assert parse(mutated)[0].generation == 4
        return
    with pytest.raises(EnvelopeError):
        parse(mutated)


def test_bit_flipped_ciphertext_is_refused(node_key: tuple[Path, str]) -> None:
    made = make_header("lab-001", "gh-token", 3, VALUE, not_after=0, path="/run/zeta/creds/gh-token")
    envelope = bytearray(seal(made, VALUE, [node_key[1]]))
    envelope[-5] ^= 0x01
    with pytest.raises(EnvelopeError):
        open_with_identity(bytes(envelope), str(node_key[0]))


@pytest.mark.parametrize(("path", "mode", "owner"), [
    ("/etc/shadow", "0400", "root"), ("/run/../etc/x", "0400", "root"), ("/run/a b", "0400", "root"),
    ("/run/x", "0644", "root"), ("/run/x", "abc", "root"), ("/run/x", "0400", "Root;rm"),
])
def test_targets_outside_tmpfs_or_world_readable_are_refused(path: str, mode: str, owner: str) -> None:
    with pytest.raises(BadInput):
        make_header("lab-001", "gh-token", 1, VALUE, not_after=0, path=path, mode=mode, owner=owner)


def test_passphrase_blobs_open_only_with_the_passphrase(tmp_path: Path) -> None:
    made = make_header("usb:U1", "k3s-token", 1, VALUE, not_after=0, path="/run/zeta/creds/k3s-token")
    blob = seal_passphrase(made, VALUE, Secret("correct horse"))
    assert open_passphrase(blob, Secret("correct horse"))[1] == VALUE
    with pytest.raises(EnvelopeError, match="wrong passphrase"):
        open_passphrase(blob, Secret("wrong horse"))
    loose = tmp_path / "pass"
    loose.write_text("correct horse\n")
    loose.chmod(0o644)
    with pytest.raises(BadInput, match="0600"):
        read_passphrase_file(str(loose))
    loose.chmod(0o600)
    assert read_passphrase_file(str(loose)) == Secret("correct horse")


def test_blob_cli_refusals_and_no_value_on_the_command_line(cli: Cli, tmp_path: Path) -> None:
    value, passphrase = tmp_path / "v", tmp_path / "p"
    value.write_bytes(b"k3s-secret")
    passphrase.write_text("a good passphrase\n")
    passphrase.chmod(0o600)
    blob, out = tmp_path / "k3s-token.age", tmp_path / "restored"
    cli("creds", "seal-blob", "k3s-token", "--usb-id", "U1", "--out", str(blob), "--from-file", str(value),
        "--passphrase-file", str(passphrase), check_rc=0)
    assert oct(blob.stat().st_mode & 0o777) == "0o600" and b"k3s-secret" not in blob.read_bytes()
    cli("creds", "open-blob", str(blob), "--usb-id", "U1", "--name", "k3s-token", "--out", str(out),
        "--passphrase-file", str(passphrase), check_rc=0)
    assert out.read_bytes() == b"k3s-secret" and out.stat().st_mode & 0o077 == 0
    refusals = {
        "sealed for usb:U1, not usb:U2": ["--usb-id", "U2", "--passphrase-file", str(passphrase)],
        "holds credential 'k3s-token', not 'other'": ["--usb-id", "U1", "--name", "other", "--passphrase-file",
                                                      str(passphrase)],
    }
    for message, args in refusals.items():
        result = cli("creds", "open-blob", str(blob), "--out", str(tmp_path / "no"), *args, check_rc=4)
        assert message in result.stderr and not (tmp_path / "no").exists()
    wrong = tmp_path / "wrong"
    wrong.write_text("not the passphrase\n")
    wrong.chmod(0o600)
    result = cli("creds", "open-blob", str(blob), "--usb-id", "U1", "--out", str(tmp_path / "no"),
                 "--passphrase-file", str(wrong), check_rc=4)
    assert "wrong passphrase" in result.stderr
    passphrase.chmod(0o644)
    result = cli("creds", "open-blob", str(blob), "--usb-id", "U1", "--out", str(tmp_path / "no"),
                 "--passphrase-file", str(passphrase), check_rc=4)
    assert "must be 0600" in result.stderr
    for option in ("--passphrase", "--value"):
        result = cli("creds", "seal-blob", "x", "--usb-id", "U", "--out", str(tmp_path / "b"), option, "hunter2",
                     check_rc=4)
        assert "No such option" in result.stderr
    assert not (tmp_path / "b").exists()
    assert os.environ.get("ZETACTL_PASSPHRASE") is None


def test_backstop_also_masks_a_secret_read_with_its_trailing_newline() -> None:
    import logging

    Secret(b"ghp_from_a_file\n")
    record = logging.LogRecord("asyncssh", logging.DEBUG, "f", 1, "Command: echo %s", ("ghp_from_a_file",), None)
    RedactingFilter().filter(record)
    assert "ghp_from_a_file" not in record.getMessage()
