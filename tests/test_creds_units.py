"""Envelopes, the Secret type and passphrase blobs, without a lab: every mutation is refused, by `parse` and by
the node's own check script (run here with sh and coreutils), and format v1 envelopes are refused with the way
to reseal them."""

from __future__ import annotations

import copy
import hashlib
import json
import os
import pickle
import secrets
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pyrage
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tests.conftest import ROOT, Cli
from zetactl.creds import store
from zetactl.creds.envelope import (
    FIELDS,
    EnvelopeError,
    Header,
    OldFormat,
    make_header,
    open_passphrase,
    open_with_identity,
    parse,
    read_passphrase_file,
    seal,
    seal_passphrase,
)
from zetactl.errors import BadInput
from zetactl.remote import BadAnswer, source
from zetactl.secret import PLACEHOLDER, RedactingFilter, Secret
from zetactl.steps.base import Where
from zetactl.steps.credential import Credential

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


def _plain(header: Header, value: Secret = VALUE) -> bytes:
    return header.render() + value.reveal()


def _edit(plain: bytes, old: bytes, new: bytes) -> bytes:
    assert plain.count(old) == 1, old
    return plain.replace(old, new)


@pytest.mark.parametrize("mutate", [
    lambda p: p[:-1],  # truncated value
    lambda p: p + b"x",  # extra byte
    lambda p: p.replace(b"zeta-credential v2", b"zeta-credential v3"),
    lambda p: p.replace(b"\nmode 0400", b"\nmode 0400\nmode 0400"),  # repeated field
    lambda p: p.replace(b"\nunits ", b"\nextra x\nunits "),  # unknown field
    lambda p: p.replace(b"length ", b"length  "),  # non-canonical
    lambda p: p.replace(b"\n\n", b"\n", 1),  # no header end
    lambda p: p[: p.index(b"\n\n") + 2] + bytes([p[p.index(b"\n\n") + 2] ^ 1]) + p[p.index(b"\n\n") + 3:],  # bit flip
    lambda p: p.replace(b"\ndigest ", b"\ndigest 0" , 1)[:-1],  # digest one hex longer, value shorter
])
def test_every_mutation_of_the_plaintext_is_refused(mutate: object) -> None:
    made = make_header("lab-001", "gh-token", 3, VALUE, not_after=0, path="/run/zeta/creds/gh-token")
    plain = _plain(made)
    assert parse(plain) == (made, VALUE)
    with pytest.raises(EnvelopeError):
        parse(mutate(plain))  # type: ignore[operator]


GOOD = dict(node="lab-001", name="gh-token", generation=3, not_after=1900000000, path="/run/zeta/creds/gh-token",
            mode="0440", owner="zeta-otto", group="zeta", units=("zeta-otto.service",))
# one edit per header field, each keeping the header canonical: before format 2 they all parsed
FIELD_EDITS: dict[str, tuple[bytes, bytes]] = {
    "node": (b"\nnode lab-001\n", b"\nnode lab-002\n"),
    "name": (b"\nname gh-token\n", b"\nname gh-tokem\n"),
    "generation": (b"\ngeneration 3\n", b"\ngeneration 4\n"),
    "created": (b"\ncreated 1", b"\ncreated 2"),
    "not-after": (b"\nnot-after 1900000000\n", b"\nnot-after 0\n"),
    "salt": (b"\nsalt ", b"\nsalt f"),  # with its last hex digit dropped below
    "path": (b"\npath /run/zeta/creds/gh-token\n", b"\npath /run/zeta/creds/gh-tokem\n"),
    "mode": (b"\nmode 0440\n", b"\nmode 0400\n"),
    "owner": (b"\nowner zeta-otto\n", b"\nowner root\n"),
    "group": (b"\ngroup zeta\n", b"\ngroup root\n"),
    "units": (b"\nunits zeta-otto.service\n", b"\nunits \n"),
    "length": (f"\nlength {len(VALUE)}\n".encode(), f"\nlength {len(VALUE) - 1}\n".encode()),
    "digest": (b"\ndigest ", b"\ndigest 0"),  # with its last hex digit dropped below
}
FIELD_REFUSALS = {"length": f"value is {len(VALUE)} bytes, header says {len(VALUE) - 1}"}


def _field_edit(plain: bytes, field: str) -> bytes:
    old, new = FIELD_EDITS[field]
    edited = _edit(plain, old, new)
    if field in ("salt", "digest"):  # keep the hex length: drop the digit at the end of that line
        start = edited.index(new) + len(new)
        end = edited.index(b"\n", start)
        edited = edited[: end - 1] + edited[end:]
    return edited


def test_the_field_edits_cover_every_header_field() -> None:
    assert set(FIELD_EDITS) == set(FIELDS)


@pytest.mark.parametrize("field", list(FIELD_EDITS))
def test_an_edited_header_field_is_refused(field: str) -> None:
    made = make_header(value=VALUE, **GOOD)  # type: ignore[arg-type]
    plain = _plain(made)
    edited = _field_edit(plain, field)
    assert edited != plain
    head = edited.partition(b"\n\n")[0] + b"\n\n"
    fields = [line.split(b" ", 1)[0].decode() for line in head.split(b"\n")[1:] if line]
    assert fields == list(FIELDS)  # still every field, in order, in canonical form
    with pytest.raises(EnvelopeError) as refused:
        parse(edited)
    assert FIELD_REFUSALS.get(field, "the header or the value does not match the envelope's digest") \
        in str(refused.value)


def _v1_plain(value: Secret, node: str = "lab-001", name: str = "gh-token") -> bytes:
    """A plaintext as zetactl sealed it before format 2 (digest over the salt and the value only)."""
    salt = secrets.token_bytes(16)
    lines = ["zeta-credential v1", f"node {node}", f"name {name}", "generation 1", f"created {int(time.time())}",
             "not-after 0", f"salt {salt.hex()}",
             f"digest {hashlib.sha256(salt.hex().encode() + value.reveal()).hexdigest()}",
             f"path /run/zeta/creds/{name}", "mode 0400", "owner root", "group root", "units ",
             f"length {len(value)}"]
    return ("\n".join(lines) + "\n\n").encode() + value.reveal()


def test_a_format_v1_envelope_is_refused_with_the_way_to_reseal_it(node_key: tuple[Path, str]) -> None:
    old = _v1_plain(VALUE)
    with pytest.raises(OldFormat, match=r"format v1, sealed by an older zetactl.*zetactl creds rotate NAME "
                                        r"--from-file FILE"):
        parse(old)
    with pytest.raises(OldFormat):  # through age too: no path accepts it
        open_with_identity(bytes(pyrage.encrypt(old, [pyrage.ssh.Recipient.from_str(node_key[1])])),
                           str(node_key[0]))
    with pytest.raises(EnvelopeError, match=r"not a zeta credential envelope \(v2\)"):
        parse(old.replace(b"zeta-credential v1", b"zeta-credential v0"))


def _v1_record(home: Path, name: str, state: str = "complete") -> Path:
    """A credential record as zetactl wrote it before format 2 (no `format`), with its envelope."""
    folder = home / "creds" / name
    (folder / "1").mkdir(parents=True)
    record = {"name": name, "generation": 1, "state": state,
              "target": {"path": f"/run/zeta/creds/{name}", "mode": "0400", "owner": "root", "group": "root",
                         "units": []},
              "not_after": 0, "created": int(time.time()), "hosts": {"lab-001": {"node": "lab-001", "digest": "ab"}}}
    (folder / "credential.json").write_text(json.dumps(record))
    (folder / "1" / "lab-001.age").write_bytes(b"age-encryption.org/v1\n(ciphertext of a v1 plaintext)\n")
    return folder


def _zetactl(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "zetactl", *args], capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, "ZETACTL_HOME": str(home)}, stdin=subprocess.DEVNULL, timeout=120)


def test_commands_refuse_a_credential_sealed_in_format_v1(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "home"
    _v1_record(home, "old-tok")
    _v1_record(home, "old-pending", state="pending")
    reseal = "was sealed by an older zetactl (envelope format v1, whose header is not bound to its digest): " \
             "reseal it with `zetactl creds rotate {} --from-file FILE`"
    inventory = str(ROOT / "inventory" / "hosts.yml")
    for args, name in ((["push", "old-tok"], "old-tok"), (["push"], "old-pending"), (["verify", "old-tok"], "old-tok"),
                       (["rotate", "old-tok"], "old-tok"), (["rotate", "old-pending"], "old-pending")):
        result = _zetactl(home, "creds", *args, "-i", inventory)
        assert result.returncode == 4, (args, result.stderr)
        assert reseal.format(name) in result.stderr, (args, result.stderr)
        assert "Traceback" not in result.stderr and not (home / "runs").exists()  # refused before any run
    listed = _zetactl(home, "creds", "list", "--format", "json")
    assert listed.returncode == 0, listed.stderr
    assert [r["name"] for r in json.loads(listed.stdout)["credentials"]] == ["old-pending", "old-tok"]
    assert "warning: credential 'old-tok' generation 1" in listed.stderr and reseal.format("old-tok") in listed.stderr
    # a hand-written playbook with a `credential` step is refused at planning too
    monkeypatch.setenv("ZETACTL_HOME", str(home))
    assert store.load("old-tok").format == 1
    with pytest.raises(BadInput, match=r"play.yml:3: credential 'old-tok' generation 1 was sealed by an older"):
        Credential({"name": "old-tok"}, Where("play.yml", 3), host="lab-001")


def test_resealing_a_v1_credential_writes_format_2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                    node_key: tuple[Path, str]) -> None:
    monkeypatch.setenv("ZETACTL_HOME", str(tmp_path / "home"))
    _v1_record(tmp_path / "home", "old-tok")
    previous = store.load("old-tok")
    monkeypatch.setattr(store, "host_key", lambda host: node_key[1])
    from zetactl.inventory import Host

    host = Host(name="lab-001", address="10.0.0.1", port=22, user="root", key_file=None,
                known_hosts=tmp_path / "known_hosts", groups=(), vars={})
    record = store.seal_for_hosts("old-tok", VALUE, [host], previous.target, not_after=0, previous=previous)
    assert record.generation == 2 and store.load("old-tok").format == 2
    store.load("old-tok").check_envelope_format()
    header, value = open_with_identity(record.envelope_path("lab-001").read_bytes(), str(node_key[0]))
    assert value == VALUE and header.generation == 2 and header.digest == record.hosts["lab-001"]["digest"]
    assert Credential({"name": "old-tok"}, Where("play.yml", 3), host="lab-001").digest == header.digest


# -- the node's check script, run here (POSIX sh and coreutils, as on the node) ------------------------------
def _node_check(plains: list[bytes], tmp_path: Path, *, node: str = "lab-001", name: str = "gh-token",
                installed: int = 0) -> list[str]:
    """Runs the install script's checks on each plaintext: 'ok' or the refusal, in order."""
    state = tmp_path / "state"
    state.mkdir(exist_ok=True)
    if installed:
        (state / f"{name}.meta").write_text(f"generation {installed}\n")
    for index, plain in enumerate(plains):
        (tmp_path / f"w{index}").mkdir()
        (tmp_path / f"w{index}" / "plain").write_bytes(plain)
    script = (f"N={name}; S={state}; me={node}; AREAS=/run; SYSTEM=/run/systemd\n"
              "refuse() { echo \"refused: $*\"; exit 3; }\n"
              f"{source('credential_check.sh').text}\n"
              f"for i in $(seq 0 {len(plains) - 1}); do\n"
              f"  ( set -e; W={tmp_path}/w$i; zc_check\n  echo ok ) 2>/dev/null || true\n"
              "done\n")
    result = subprocess.run(["sh", "-c", script], capture_output=True, text=True, timeout=600)
    answers = result.stdout.splitlines()
    assert len(answers) == len(plains), result
    return answers


DIGEST = "refused: the header or the value does not match the envelope's digest (edited or damaged after sealing)"


def test_the_node_check_accepts_what_is_sealed_and_refuses_every_edited_field(tmp_path: Path) -> None:
    made = make_header(value=VALUE, **GOOD)  # type: ignore[arg-type]
    plain = _plain(made)
    fields = list(FIELD_EDITS)
    answers = _node_check([plain, *(_field_edit(plain, f) for f in fields), _v1_plain(VALUE),
                           _plain(make_header("lab-002", "gh-token", 3, VALUE, not_after=0, path=GOOD["path"])),
                           _plain(make_header("lab-001", "gh-token", 1, VALUE, not_after=0, path=GOOD["path"]))],
                          tmp_path, installed=2)
    assert answers[0] == "ok"
    assert dict(zip(fields, answers[1:], strict=False)) == dict.fromkeys(fields, DIGEST)
    assert answers[-3] == ("refused: envelope format v1, sealed by an older zetactl (its header is not bound to its "
                           "digest): reseal it with zetactl creds rotate gh-token --from-file FILE")
    assert answers[-2] == "refused: sealed for node 'lab-002', this node is 'lab-001'"  # bound, but not ours
    assert answers[-1] == "refused: generation 1 is older than the installed generation 2 (a replay?)"


def test_the_node_check_refuses_every_single_byte_mutation(tmp_path: Path) -> None:
    """At every position of a sealed plaintext one of: a changed byte, a removed byte, an inserted byte."""
    made = make_header(value=VALUE, **GOOD)  # type: ignore[arg-type]
    plain = _plain(made)
    mutants = []
    for position in range(len(plain) + 1):
        kind = position % 3 if position < len(plain) else 2
        if kind == 0:
            mutants.append(plain[:position] + bytes([plain[position] ^ (1 << position % 8)]) + plain[position + 1:])
        elif kind == 1:
            mutants.append(plain[:position] + plain[position + 1:])
        else:
            mutants.append(plain[:position] + bytes([(plain[position - 1] + 1) % 256]) + plain[position:])
    answers = _node_check([plain, *mutants], tmp_path)
    assert answers[0] == "ok"
    accepted = [(i, mutants[i]) for i, answer in enumerate(answers[1:]) if not answer.startswith("refused: ")]
    assert not accepted
    for mutant in mutants:
        with pytest.raises(EnvelopeError):
            parse(mutant)


def test_bit_flipped_ciphertext_is_refused(node_key: tuple[Path, str]) -> None:
    made = make_header("lab-001", "gh-token", 3, VALUE, not_after=0, path="/run/zeta/creds/gh-token")
    envelope = bytearray(seal(made, VALUE, [node_key[1]]))
    envelope[-5] ^= 0x01
    with pytest.raises(EnvelopeError):
        open_with_identity(bytes(envelope), str(node_key[0]))


@pytest.mark.parametrize(("path", "mode", "owner"), [
    ("/run/systemd/x", "0400", "root"), ("/run/../etc/x", "0400", "root"), ("/run/a b", "0400", "root"),
    ("/run/x/", "0400", "root"), ("/run/x", "0644", "root"), ("/run/x", "abc", "root"), ("/run/x", "0400", "Root;rm"),
    ("/run/current-system", "0400", "root"), ("/run/zeta/creds/.gen/x/1", "0400", "root"),
])
def test_targets_in_system_folders_badly_written_or_world_readable_are_refused(path: str, mode: str,
                                                                                owner: str) -> None:
    with pytest.raises(BadInput):
        make_header("lab-001", "gh-token", 1, VALUE, not_after=0, path=path, mode=mode, owner=owner)


@pytest.mark.parametrize(("path", "declared", "taken"), [
    ("/run/zeta/creds/gh", [], True), ("/run/zeta/creds/sub/gh", [], True), ("/etc/shadow", [], False),
    ("/run/x", [], False), ("/run/zeta/creds", [], False),
    ("/home/otto/.config/app/t", ["/home/otto/.config/app"], True),
    ("/home/otto/t", ["/home/otto/.config/app"], False), ("/run/zeta/creds/hub-voice", [], False),
])
def test_a_path_lies_in_an_area_of_every_host(path: str, declared: list[str], taken: bool) -> None:
    from zetactl.creds.areas import check_path
    from zetactl.inventory import Host

    hosts = [Host(name=n, address="127.0.0.1", port=22, user="root", key_file=None, known_hosts=Path("k"),
                  groups=("all",), vars={"zeta_credential_areas": declared} if n == "a" else {}) for n in "ab"]
    if taken and declared:  # b has only the default area
        with pytest.raises(BadInput, match="outside b's credential areas"):
            check_path(path, hosts)
        assert check_path(path, hosts[:1]) == path
    elif taken:
        assert check_path(path, hosts) == path
    else:
        with pytest.raises(BadInput):
            check_path(path, hosts)


@pytest.mark.parametrize("area", ["/", "/run", "/etc", "/home", "/run/user", "/var/lib", "/run/systemd/x", "/nix/y",
                                  "/etc/ssh/keys", "/var/lib/zeta/x", "relative", "/etc/app/", "/etc/./app"])
def test_an_area_is_a_folder_of_its_own(area: str) -> None:
    from zetactl.creds.areas import check_area

    with pytest.raises(BadInput):
        check_area(area, "test")


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


def test_a_v1_blob_is_refused_with_the_way_to_seal_it_again(cli: Cli, tmp_path: Path) -> None:
    passphrase = tmp_path / "p"
    passphrase.write_text("a good passphrase\n")
    passphrase.chmod(0o600)
    blob, out = tmp_path / "k3s-token.age", tmp_path / "restored"
    blob.write_bytes(bytes(pyrage.passphrase.encrypt(_v1_plain(VALUE, node="usb:U1", name="k3s-token"),
                                                     "a good passphrase")))
    result = cli("creds", "open-blob", str(blob), "--usb-id", "U1", "--name", "k3s-token", "--out", str(out),
                 "--passphrase-file", str(passphrase), check_rc=4)
    assert f"{blob}: refused: blob format v1, sealed by an older zetactl (its header is not bound to its digest): " \
           f"seal it again with `zetactl creds seal-blob NAME --usb-id ID --out {blob} --from-file FILE`" \
           in result.stderr, result
    assert "Traceback" not in result.stderr and not out.exists()


def test_backstop_also_masks_a_secret_read_with_its_trailing_newline() -> None:
    import logging

    Secret(b"ghp_from_a_file\n")
    record = logging.LogRecord("asyncssh", logging.DEBUG, "f", 1, "Command: echo %s", ("ghp_from_a_file",), None)
    RedactingFilter().filter(record)
    assert "ghp_from_a_file" not in record.getMessage()


def test_generation_names_are_read_exactly_and_none_is_no_error() -> None:
    from zetactl.steps.credential import generations

    assert generations({"gens": ""}) == []  # never installed, or a reboot emptied /run: retire says so, no parse error
    assert generations({"gens": '"1"\n"2"\n"3\\n4"\n"\\036x"'}) == ["1", "2", "3\n4", "\x1ex"]
    with pytest.raises(BadAnswer):
        generations({"gens": "1"})  # ls was asked to quote every name
