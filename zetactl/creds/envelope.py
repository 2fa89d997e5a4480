"""Credential envelopes: age v1 files, sealed to one node's SSH host key, with a bound header.

Plaintext inside the age file (docs/credentials.md), format v2:

    zeta-credential v2
    node lab-003
    name gh-token
    generation 4
    created 1795316313
    not-after 1803092313          (unix seconds; 0: never)
    salt 9f2c...                  (16 random bytes, hex)
    path /run/zeta/creds/gh-token
    mode 0400
    owner root
    group root
    units zeta-otto.service       (space separated; may be empty)
    length 40
    digest 5b1e...                (last: sha256 of this plaintext without this line)
    <empty line>
    <value: exactly `length` bytes>

The digest is sha256 over every byte but its own line: the header lines above it, the empty line and the
value (`Header.unbound() + value`).

The digest binds every header field and the value together: a plaintext that differs from an accepted one
in any byte (header or value, changed, inserted or removed) is refused, here (`parse`, which also wants
the header in canonical form) and on the node (the install script recomputes it with sha256sum over the
exact bytes). The salt keeps the digest from revealing a guessable value; the controller's record and
the node's marker keep the digest to compare what is installed without seeing it. It is not a signature:
anyone who can seal to the host key can make a valid envelope (who may deliver one is decided by the SSH
login, as with agenix); age's authenticated encryption keeps it from being altered in transit.

Format v1 (zetactl before this one: `digest` covered only salt and value, so an edited header in
canonical form parsed as another valid envelope) is refused everywhere: `parse` raises `OldFormat`, the
node's script refuses it, and a controller record without `"format": 2` is refused before a push
(`store.Record.check_envelope_format`). The controller cannot convert one (it cannot open envelopes sealed
to nodes and keeps no value): such a credential is resealed with `zetactl creds rotate NAME --from-file
FILE` (a passphrase blob: `zetactl creds seal-blob` again).

The age layer (pyrage: no hand-rolled cipher) makes the file readable with stock tooling:
`age -d -i /etc/ssh/ssh_host_ed25519_key FILE`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import os
import re
import secrets
import time
from dataclasses import dataclass, field

import pyrage

from zetactl.errors import BadInput
from zetactl.remote import names
from zetactl.secret import Secret

VERSION = 2
MAGIC = f"zeta-credential v{VERSION}"
OLD_MAGIC = "zeta-credential v1"
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}\Z")
FIELDS = ("node", "name", "generation", "created", "not-after", "salt", "path", "mode", "owner", "group", "units",
          "length", "digest")  # in this order; the digest last: it covers every line above it
RESEAL = "reseal it with `zetactl creds rotate NAME --from-file FILE`"


_HEX = re.compile(r"[0-9a-f]+")


class EnvelopeError(Exception):
    """An envelope that cannot be opened or whose header is not what it must be."""


class OldFormat(EnvelopeError):
    """A format v1 envelope (an older zetactl): its header is not bound, so it is refused."""


@dataclass(frozen=True)
class Header:
    node: str
    name: str
    generation: int
    not_after: int  # 0: never
    salt: str
    digest: str  # sha256 of the plaintext without the digest line (see `bound`)
    path: str
    mode: str = "0400"
    owner: str = "root"
    group: str = "root"
    units: tuple[str, ...] = ()
    length: int = 0
    created: int = field(default_factory=lambda: int(time.time()))

    def _lines(self) -> list[str]:
        values = {"node": self.node, "name": self.name, "generation": str(self.generation),
                  "created": str(self.created), "not-after": str(self.not_after), "salt": self.salt,
                  "path": self.path, "mode": self.mode, "owner": self.owner, "group": self.group,
                  "units": " ".join(self.units), "length": str(self.length), "digest": self.digest}
        return [MAGIC, *(f"{key} {values[key]}" for key in FIELDS)]

    def render(self) -> bytes:
        """The header as it precedes the value: its lines, the digest last, then an empty line."""
        return ("\n".join(self._lines()) + "\n\n").encode()

    def unbound(self) -> bytes:
        """The header without its digest line (every line above it, then the empty line)."""
        return ("\n".join(self._lines()[:-1]) + "\n\n").encode()

    def expected_digest(self, value: Secret | bytes) -> str:
        """sha256 of the plaintext without its digest line: every other header field and the value."""
        return hashlib.sha256(self.unbound() + (value.reveal() if isinstance(value, Secret) else value)).hexdigest()

    def bound(self, value: Secret) -> Header:
        """This header with the digest of itself and VALUE (after a field was set by hand, e.g. in a test)."""
        sized = dataclasses.replace(self, length=len(value))
        return dataclasses.replace(sized, digest=sized.expected_digest(value))

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
    """What any credential's target must be, whatever the host (its areas: creds/areas.py, when sealing)."""
    from zetactl.creds.areas import INTERNAL, SYSTEM, normal

    normal(path, "credential path")
    if any(c.isspace() for c in path):
        raise BadInput(f"credential path {names.show(path)} holds a space")
    if any(path == s or path.startswith(s + "/") for s in (*SYSTEM, *INTERNAL)):
        raise BadInput(f"credential path {names.show(path)} is in a system or zetactl folder")
    if not re.fullmatch(r"0?[0-7]{3}", mode) or int(mode, 8) & 0o077 & ~0o040:
        raise BadInput(f"credential mode {mode!r}: octal, readable by owner (and at most its group), e.g. 0400")
    names.account(owner, "credential owner")
    names.account(group, "credential group")
    for unit in units:
        names.unit(unit, "--unit")


def make_header(node: str, name: str, generation: int, value: Secret, *, not_after: int, path: str,
                mode: str = "0400", owner: str = "root", group: str = "root", units: tuple[str, ...] = ()) -> Header:
    check_name(name)
    check_target(path, mode, owner, group, units)
    # a node's envelope is bound to its node id, a boot USB's blob to the USB's id
    names.node_id(node.removeprefix("usb:"), "--usb-id" if node.startswith("usb:") else "node id")
    header = Header(node=node, name=name, generation=generation, not_after=not_after,
                    salt=secrets.token_bytes(16).hex(), digest="", path=path, mode=mode.rjust(4, "0"), owner=owner,
                    group=group, units=units)
    return header.bound(value)


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
    """Split and check an opened envelope; every input but a canonical, bound v2 plaintext is refused
    (EnvelopeError; OldFormat for a v1 one), so what is accepted is `header.render() + value`, byte for byte."""
    head, sep, value = plaintext.partition(b"\n\n")
    if not sep:
        raise EnvelopeError("no header end")
    lines = head.decode("ascii", errors="strict").split("\n") if head.isascii() else []
    if lines and lines[0] == OLD_MAGIC:
        raise OldFormat("envelope format v1, sealed by an older zetactl: its header is not bound to its digest, "
                        f"so it is refused; {RESEAL}")
    if not lines or lines[0] != MAGIC:
        raise EnvelopeError(f"not a zeta credential envelope (v{VERSION})")
    fields: dict[str, str] = {}
    for line in lines[1:]:
        key, _, rest = line.partition(" ")
        if key not in FIELDS or key in fields:
            raise EnvelopeError(f"unexpected header line {key[:40]!r}")
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
    if not value:
        raise EnvelopeError("the value is empty")
    if not hmac.compare_digest(header.expected_digest(value), header.digest):  # before the value becomes a Secret
        raise EnvelopeError("the header or the value does not match the envelope's digest "
                            "(edited or damaged after sealing)")
    return header, Secret(value)


def open_with_identity(envelope: bytes, identity_path: str) -> tuple[Header, Secret]:
    """Open with an SSH private key file (tests, recovery); the node itself uses the age tool."""
    with open(identity_path, "rb") as fh:
        key = fh.read()
    try:
        identity = pyrage.ssh.Identity.from_buffer(key)
        return parse(bytes(pyrage.decrypt(envelope, [identity])))
    except pyrage.DecryptError as exc:
        raise EnvelopeError(f"cannot open: {exc}") from None


def _passphrase_text(passphrase: Secret) -> str:
    """age takes a passphrase as text: one that is not UTF-8 is bad input (never quoted)."""
    try:
        return passphrase.reveal().decode()
    except UnicodeDecodeError:
        raise BadInput("the passphrase is not UTF-8 text") from None


def seal_passphrase(header: Header, value: Secret, passphrase: Secret) -> bytes:
    """A passphrase (scrypt) envelope, for the boot USB: `node` holds the USB's id."""
    return bytes(pyrage.passphrase.encrypt(header.render() + value.reveal(), _passphrase_text(passphrase)))


def open_passphrase(envelope: bytes, passphrase: Secret) -> tuple[Header, Secret]:
    text = _passphrase_text(passphrase)
    try:
        return parse(bytes(pyrage.passphrase.decrypt(envelope, text)))
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
