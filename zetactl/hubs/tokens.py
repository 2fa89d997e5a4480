"""Hub tokens: one per tenant per hub service, recognisable by secret scanners, checksummed, and
stored only as hashes (DESIGN.md sections 6 and 10).

    ztk_<id>_<secret><check>

`id` is 12 base62 characters (public: it names the registry record), `secret` 32 base62 characters
(190 bits from `secrets`), `check` 6 base62 characters of sha256 over the rest, so a typo or a
truncated token is refused before any lookup. At rest (hub registries, controller records) only
sha256(token) is kept; comparison is constant-time.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

from zetactl.secret import Secret

PREFIX = "ztk_"
ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
ID_LEN, SECRET_LEN, CHECK_LEN = 12, 32, 6
SHAPE = re.compile(rf"^{PREFIX}([0-9A-Za-z]{{{ID_LEN}}})_([0-9A-Za-z]{{{SECRET_LEN + CHECK_LEN}}})$")


class TokenError(ValueError):
    """Not a well-formed token (the hub answers every such case with the same refusal)."""


def _random(length: int) -> str:
    return "".join(secrets.choice(ALPHABET) for _ in range(length))


def _check(body: str) -> str:
    digest = int.from_bytes(hashlib.sha256(body.encode()).digest(), "big")
    out = []
    for _ in range(CHECK_LEN):
        digest, index = divmod(digest, len(ALPHABET))
        out.append(ALPHABET[index])
    return "".join(out)


@dataclass(frozen=True)
class Minted:
    token_id: str
    token: Secret  # the only copy: delivered to the tenant machine sealed, never stored in the clear
    hash: str  # sha256 hex of the token: what hubs and the controller keep


def mint() -> Minted:
    token_id = _random(ID_LEN)
    body = f"{PREFIX}{token_id}_{_random(SECRET_LEN)}"
    text = body + _check(body)
    return Minted(token_id, Secret(text), token_hash(text))


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def parse(token: str) -> str:
    """The token's public id, or TokenError: the shape and the checksum are checked, nothing else."""
    if len(token) > 256:
        raise TokenError("too long")
    match = SHAPE.match(token)
    if not match:
        raise TokenError("not a zetactl hub token")
    body = token[: -CHECK_LEN]
    if not hmac.compare_digest(_check(body), token[-CHECK_LEN:]):
        raise TokenError("checksum mismatch")
    return match.group(1)


def matches(token: str, stored_hash: str) -> bool:
    """Constant-time comparison of a presented token with a stored hash."""
    return hmac.compare_digest(token_hash(token), stored_hash)
