"""Hub tokens: shape, checksum, hashing; every mutation of a valid token is refused."""

from __future__ import annotations

import pytest

from zetactl.hubs.tokens import ALPHABET, PREFIX, TokenError, matches, mint, parse, token_hash


def test_minted_tokens_round_trip_and_only_their_hash_is_kept() -> None:
    minted = mint()
    text = minted.token.reveal().decode()
    assert text.startswith(PREFIX) and parse(text) == minted.token_id
    assert minted.hash == token_hash(text) and matches(text, minted.hash)
    assert text not in repr(minted) and minted.hash not in text
    assert len({mint().token_id for _ in range(200)}) == 200


@pytest.mark.parametrize("position", range(0, 56, 3))
def test_every_single_character_change_is_refused(position: int) -> None:
    text = mint().token.reveal().decode()
    original = text[position]
    replacement = ALPHABET[(ALPHABET.index(original) + 1) % len(ALPHABET)] if original in ALPHABET else "X"
    mutated = text[:position] + replacement + text[position + 1 :]
    with pytest.raises(TokenError):
        parse(mutated)
    assert not matches(mutated, token_hash(text))


@pytest.mark.parametrize("bad", ["", "Bearer", "ztk_", "ztk_short_x", "x" * 1_000_000, "ztk_\x00",
                                 "ztk_abc\r\n", "ghp_" + "a" * 50])
def test_malformed_inputs_are_refused_without_crashing(bad: str) -> None:
    with pytest.raises(TokenError):
        parse(bad)


def test_truncated_and_extended_tokens_are_refused() -> None:
    text = mint().token.reveal().decode()
    for variant in (text[:-1], text + "a", text[1:], " " + text):
        with pytest.raises(TokenError):
            parse(variant)
