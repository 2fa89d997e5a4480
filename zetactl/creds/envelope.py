"""Credential envelopes: age v1 files, sealed to one node's SSH host key, with a binding header.

Plaintext inside the age file (docs/credentials.md):

    zeta-credential v1
    node lab-003
    name gh-token
    generation 4
    created 1795316313
    not-after 1803092313          (unix seconds; 0: never)
    salt 9f2c...                  (16 random bytes, hex)
    digest 5b1e...                (sha256 over the salt's hex and the value)
    path /run/zeta/creds/gh-token
    mode 0400
    owner root
    group root
    units zeta-otto.service       (space separated; may be empty)
    length 40
    <empty line>
    <value: exactly `length` bytes>

The header binds the value to its node, name, generation and expiry; the node refuses anything
else. The age layer (pyrage: no hand-rolled cipher) makes the file readable with stock tooling:
`age -d -i /etc/ssh/ssh_host_ed25519_key FILE`.
"""

from __future__ import annotations

import os
import re
import secrets
import time
from dataclasses import dataclass, field

import pyrage

from zetactl.errors import BadInput
from zetactl.secret import Secret

MAGIC = "zeta-credential v1"
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
FIELDS = ("node", "name", "generation", "created", "not-after", "salt", "digest", "path", "mode", "owner",
          "group", "units", "length")


_HEX = re.compile(r"[0-9a-f]+")


class EnvelopeError(Exception):
    """An envelope that cannot be opened or whose header is not what it must be."""


@dataclass(frozen=True)
class Header:
    node: str
    name: str
    generation: int
    not_after: int  # 0: never
    salt: str
    digest: str
    path: str
    mode: str = "0400"
    owner: str = "root"
    group: str = "root"
    units: tuple[str, ...] = ()
    length: int = 0
    created: int = field(default_factory=lambda: int(time.time()))

    def render(self) -> bytes:
        values = {"node": self.node, "name": self.name, "generation": str(self.generation),
                  "created": str(self.created), "not-after": str(self.not_after), "salt": self.salt,
                  "digest": self.digest, "path": self.path, "mode": self.mode, "owner": self.owner,
                  "group": self.group, "units": " ".join(self.units), "length": str(self.length)}
        return ("\n".join([MAGIC, *(f"{key} {values[key]}" for key in FIELDS)]) + "\n\n").encode()

    def public(self) -> dict[str, object]:
        """What may be shown and recorded (no value; the digest is salted)."""
        return {"node": self.node, "name": self.name, "generation": self.generation, "created": self.created,
                "not_after": self.not_after, "digest": self.digest, "path": self.path, "mode": self.mode,
                "owner": self.owner, "group": self.group, "units": list(self.units)}


def check_name(name: str) -> str:
    if not NAME_RE.match(name):
        raise BadInput(f"credential name {name!r}: use letters, digits, '.', '_' and '-' (at most 64)")
    return name


def check_target(path: str, mode: str, owner: str, group: str, units: tuple[str, ...]) -> None:
    if not path.startswith("/run/") or ".." in path.split("/") or any(c.isspace() or ord(c) < 32 for c in path):
        raise BadInput(f"credential path {path!r} must be under /run (tmpfs), without spaces or '..'")
    if not re.fullmatch(r"0?[0-7]{3}", mode) or int(mode, 8) & 0o077 & ~0o040:
        raise BadInput(f"credential mode {mode!r}: octal, readable by owner (and at most its group), e.g. 0400")
    for value, what in ((owner, "owner"), (group, "group")):
        if not re.fullmatch(r"[a-z_][a-z0-9_-]{0,31}", value):
            raise BadInput(f"credential {what} {value!r} is not a user or group name")
    for unit in units:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9@_.:-]*", unit):
            raise BadInput(f"unit name {unit!r} is not valid")


def make_header(node: str, name: str, generation: int, value: Secret, *, not_after: int, path: str,
                mode: str = "0400", owner: str = "root", group: str = "root", units: tuple[str, ...] = ()) -> Header:
    check_name(name)
    check_target(path, mode, owner, group, units)
    if any(c.isspace() for c in node) or not node:
        raise BadInput(f"node id {node!r} is not valid")
    salt = secrets.token_bytes(16)
    return Header(node=node, name=name, generation=generation, not_after=not_after, salt=salt.hex(),
                  digest=value.digest(salt), path=path, mode=mode.rjust(4, "0"), owner=owner, group=group,
                  units=units, length=len(value))


def recipient(public_key_line: str) -> pyrage.ssh.Recipient | pyrage.x25519.Recipient:
    """An age recipient from an `ssh-ed25519 AAAA...` key or an `age1...` X25519 key."""
    text = public_key_line.strip()
    try:
        if text.startswith("age1"):
            return pyrage.x25519.Recipient.from_str(text)
        return pyrage.ssh.Recipient.from_str(" ".join(text.split()[:2]))
    except pyrage.RecipientError as exc:
        raise BadInput(f"not a usable age recipient ({text[:30]}...): {exc}") from None


def seal(header: Header, value: Secret, recipients: list[str]) -> bytes:
    """The age file: header + value, encrypted to the node's host key (+ optional recovery keys)."""
    plaintext = header.render() + value.reveal()
    return bytes(pyrage.encrypt(plaintext, [recipient(r) for r in recipients]))


def parse(plaintext: bytes) -> tuple[Header, Secret]:
    """Split and check an opened envelope; every malformed input is refused (EnvelopeError)."""
    head, sep, value = plaintext.partition(b"\n\n")
    if not sep:
        raise EnvelopeError("no header end")
    lines = head.decode("ascii", errors="strict").split("\n") if head.isascii() else []
    if not lines or lines[0] != MAGIC:
        raise EnvelopeError("not a zeta credential envelope (v1)")
    fields: dict[str, str] = {}
    for line in lines[1:]:
        key, _, rest = line.partition(" ")
        if key not in FIELDS or key in fields:
            raise EnvelopeError(f"unexpected header line {key!r}")
        fields[key] = rest
    if set(fields) != set(FIELDS):
        raise EnvelopeError(f"missing header fields: {', '.join(sorted(set(FIELDS) - set(fields)))}")
    try:
        header = Header(node=fields["node"], name=fields["name"], generation=int(fields["generation"]),
                        not_after=int(fields["not-after"]), salt=fields["salt"], digest=fields["digest"],
                        path=fields["path"], mode=fields["mode"], owner=fields["owner"], group=fields["group"],
                        units=tuple(fields["units"].split()), length=int(fields["length"]),
                        created=int(fields["created"]))
    except ValueError as exc:
        raise EnvelopeError(f"bad number in header: {exc}") from None
    if not (_HEX.fullmatch(header.salt) and len(header.salt) == 32 and _HEX.fullmatch(header.digest)
            and len(header.digest) == 64):
        raise EnvelopeError("salt or digest is not hex of the right length")
    if len(value) != header.length:
        raise EnvelopeError(f"value is {len(value)} bytes, header says {header.length} (truncated?)")
    if header.render() != head + b"\n\n":
        raise EnvelopeError("header is not in canonical form")
    secret = Secret(value)
    if secret.digest(bytes.fromhex(header.salt)) != header.digest:
        raise EnvelopeError("value does not match its digest")
    return header, secret


def open_with_identity(envelope: bytes, identity_path: str) -> tuple[Header, Secret]:
    """Open with an SSH private key file (tests, recovery); the node itself uses the age tool."""
    with open(identity_path, "rb") as fh:
        key = fh.read()
    try:
        identity = pyrage.ssh.Identity.from_buffer(key)
        return parse(bytes(pyrage.decrypt(envelope, [identity])))
    except pyrage.DecryptError as exc:
        raise EnvelopeError(f"cannot open: {exc}") from None


def seal_passphrase(header: Header, value: Secret, passphrase: Secret) -> bytes:
    """A passphrase (scrypt) envelope, for the boot USB: `node` holds the USB's id."""
    return bytes(pyrage.passphrase.encrypt(header.render() + value.reveal(), passphrase.reveal().decode()))


def open_passphrase(envelope: bytes, passphrase: Secret) -> tuple[Header, Secret]:
    try:
        return parse(bytes(pyrage.passphrase.decrypt(envelope, passphrase.reveal().decode())))
    except pyrage.DecryptError:
        raise EnvelopeError("cannot open: wrong passphrase or damaged file") from None


def read_passphrase_file(path: str) -> Secret:
    """A passphrase from a file only its owner can read (mode 0600 or stricter)."""
    status = os.stat(path)
    if status.st_mode & 0o077:
        raise BadInput(f"{path} has mode {status.st_mode & 0o777:04o}: a passphrase file must be 0600 or stricter")
    with open(path, "rb") as fh:
        data = fh.read().rstrip(b"\r\n")
    if not data:
        raise BadInput(f"{path} is empty")
    return Secret(data)
