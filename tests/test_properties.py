"""Property-based tests (hypothesis) of the pure parts: loaders, host patterns, the state machine, and the
token and envelope parsers. Each property says what must hold for every input hypothesis can find:
a clear BadInput or a result, never another exception; every accepted input round-trips; every
mutation of a valid token is refused, and every single-byte mutation of an envelope's plaintext is refused."""

from __future__ import annotations

import dataclasses
import string
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from zetactl.creds import envelope
from zetactl.engine.states import FINAL, TRANSITIONS, IllegalTransition, State, check_transition
from zetactl.errors import BadInput
from zetactl.hubs import tokens
from zetactl.inventory import load_inventory, select_hosts
from zetactl.playbook import load_playbook
from zetactl.secret import Secret

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
ROOT = Path(__file__).resolve().parent.parent

# YAML-ish text: the characters YAML cares about, weighted towards structure
YAML_TEXT = st.lists(st.sampled_from([*"abc_-: \n\t{}[],'\"#&*!|>%@`?0123456789.~=",
                                     "all", "hosts", "vars", "children", "steps", "name", "\n  "]),
                     max_size=80).map("".join)
YAML_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=20,
)


_DIR = Path(tempfile.mkdtemp(prefix="zeta-prop-"))  # one file per name, rewritten for each input


def _write(text: str, name: str) -> Path:
    path = _DIR / name
    path.write_text(text)
    return path


def _yaml_dump(value: object) -> str:
    import yaml

    return yaml.safe_dump(value)


@SETTINGS
@given(st.one_of(YAML_TEXT, YAML_VALUES.map(_yaml_dump)))
def test_inventory_loading_never_crashes(text: str) -> None:
    try:
        inventory = load_inventory(_write(text, "hosts.yml"))
    except BadInput as exc:
        assert str(exc)  # a message, with the file
        return
    for name, host in inventory.hosts.items():
        assert host.name == name


@SETTINGS
@given(st.one_of(YAML_TEXT, YAML_VALUES.map(_yaml_dump),
                 st.dictionaries(st.sampled_from(["name", "hosts", "vars", "steps", "handlers", "serial", "gate",
                                                  "max_fail"]), YAML_VALUES, max_size=5).map(_yaml_dump)))
def test_playbook_loading_never_crashes(text: str) -> None:
    try:
        load_playbook(_write(text, "play.yml"))
    except BadInput as exc:
        assert str(exc)


PATTERN_ATOMS = st.sampled_from(["all", "control_plane", "worker_gpu", "admin", "tenants", "cp1", "cp*", "gpu[12]",
                                 "~cp[0-9]", "~(", "nosuch", "", "*", "!cp1", "&control_plane", "!", "&", "[", "~"])


@SETTINGS
@given(st.lists(PATTERN_ATOMS, min_size=1, max_size=4), st.sampled_from([",", ":"]))
def test_limit_patterns_select_a_subset_or_refuse(atoms: list[str], joiner: str) -> None:
    inventory = load_inventory(ROOT / "inventory" / "hosts.yml")
    pattern = joiner.join(atoms)
    try:
        chosen = select_hosts(inventory, pattern)
    except BadInput as exc:
        assert str(exc)
        return
    assert len(chosen) == len(set(chosen)) and set(chosen) <= set(inventory.hosts)
    assert chosen == [h for h in inventory.hosts if h in chosen]  # inventory order


@SETTINGS
@given(st.lists(st.sampled_from(list(State)), min_size=1, max_size=12))
def test_the_state_machine_accepts_exactly_its_table(path: list[State]) -> None:
    current = State.PENDING
    for new in path:
        if new in TRANSITIONS[current]:
            check_transition(current, new)
            current = new
        else:
            with pytest.raises(IllegalTransition):
                check_transition(current, new)
    # every reachable state can still reach a final one, and a final state has no way out
    seen, todo = set(), [current]
    while todo:
        state = todo.pop()
        seen.add(state)
        todo.extend(s for s in TRANSITIONS[state] if s not in seen)
    assert seen & FINAL
    assert all(not TRANSITIONS[s] for s in FINAL)


@st.composite
def _mutations(draw: st.DrawFn, text: str) -> str:
    kind = draw(st.sampled_from(["flip", "delete", "insert", "truncate", "swap"]))
    position = draw(st.integers(0, len(text) - 1))
    if kind == "flip":
        replacement = draw(st.sampled_from(tokens.ALPHABET + "_-"))
        assume(replacement != text[position])
        return text[:position] + replacement + text[position + 1:]
    if kind == "delete":
        return text[:position] + text[position + 1:]
    if kind == "insert":
        return text[:position] + draw(st.sampled_from(tokens.ALPHABET)) + text[position:]
    if kind == "truncate":
        return text[:position]
    other = draw(st.integers(0, len(text) - 1))
    assume(text[position] != text[other])
    chars = list(text)
    chars[position], chars[other] = chars[other], chars[position]
    return "".join(chars)


@SETTINGS
@given(st.data())
def test_tokens_round_trip_and_every_mutation_is_refused(data: st.DataObject) -> None:
    minted = tokens.mint()
    text = minted.token.reveal().decode()
    assert tokens.parse(text) == minted.token_id and tokens.matches(text, minted.hash)
    mutated = data.draw(_mutations(text))
    assume(mutated != text)
    with pytest.raises(tokens.TokenError):
        tokens.parse(mutated)
    assert not tokens.matches(mutated, minted.hash)


@SETTINGS
@given(st.text(max_size=80))
def test_token_parser_takes_any_text(text: str) -> None:
    try:
        token_id = tokens.parse(text)
    except tokens.TokenError:
        return
    assert text.startswith(tokens.PREFIX + token_id)


NAMES = st.text(alphabet=string.ascii_lowercase + string.digits + "-_", min_size=1, max_size=16).filter(
    lambda n: n[0].isalnum())
USERS = st.text(alphabet=string.ascii_lowercase + string.digits + "_-", min_size=1, max_size=12).filter(
    lambda n: n[0].isalpha())
UNITS = st.lists(st.text(alphabet=string.ascii_letters + string.digits + "@_.:-", min_size=1, max_size=20).filter(
    lambda u: u[0].isalnum()), max_size=3).map(tuple)


@st.composite
def _envelopes(draw: st.DrawFn) -> tuple[envelope.Header, bytes]:
    """A sealed plaintext's header and value, every header field drawn."""
    # values of 12 bytes and more: a Secret joins the log filter's registry, and a short one could mask
    # ordinary text in later tests of the same process
    value = draw(st.binary(min_size=12, max_size=64))
    name = draw(NAMES)
    try:
        header = envelope.make_header(
            draw(st.text(alphabet=string.ascii_letters + string.digits + ":-", min_size=1, max_size=20)), name,
            draw(st.integers(1, 10**6)), Secret(value), not_after=draw(st.sampled_from([0, 1, 2**31, 4102444800])),
            path=f"/run/zeta/{name}", mode=draw(st.sampled_from(["0400", "0440", "400", "0600", "0640"])),
            owner=draw(USERS), group=draw(USERS), units=draw(UNITS))
    except BadInput:
        assume(False)
        raise
    return dataclasses.replace(header, created=draw(st.integers(0, 2**33))).bound(Secret(value)), value


def _mutate(data: st.DataObject, plaintext: bytes) -> bytes:
    """One byte changed, removed or inserted, at a position hypothesis chooses (or the end cut off)."""
    position = data.draw(st.integers(0, len(plaintext) - 1), label="position")
    kind = data.draw(st.sampled_from(["flip", "delete", "insert", "truncate"]), label="kind")
    if kind == "flip":
        byte = data.draw(st.integers(0, 255).filter(lambda b: b != plaintext[position]), label="byte")
        return plaintext[:position] + bytes([byte]) + plaintext[position + 1:]
    if kind == "delete":
        return plaintext[:position] + plaintext[position + 1:]
    if kind == "insert":
        return plaintext[:position] + bytes([data.draw(st.integers(0, 255), label="byte")]) + plaintext[position:]
    return plaintext[:position]


@SETTINGS
@given(sealed=_envelopes(), data=st.data())
def test_envelopes_round_trip_byte_for_byte_and_every_mutation_is_refused(
        sealed: tuple[envelope.Header, bytes], data: st.DataObject) -> None:
    header, value = sealed
    plaintext = header.render() + value
    parsed, secret = envelope.parse(plaintext)
    assert parsed == header and secret.reveal() == value
    assert parsed.render() + secret.reveal() == plaintext
    # The digest covers every header field and the value, and the header must be canonical: a plaintext that
    # differs in one byte (header, digest or value; changed, removed or inserted) is never accepted, be it
    # another header with the same value, the same header with another value, or another envelope altogether.
    mutated = _mutate(data, plaintext)
    with pytest.raises(envelope.EnvelopeError):
        envelope.parse(mutated)


@SETTINGS
@given(st.one_of(st.binary(max_size=400),
                 st.builds(lambda head, tail: head + tail,
                           st.sampled_from([b"zeta-credential v2\n", b"zeta-credential v1\n", b""]),
                           st.binary(max_size=300)),
                 st.tuples(_envelopes(), st.lists(st.tuples(st.integers(0, 10**4), st.binary(max_size=3)),
                                                  min_size=1, max_size=4)).map(
                     lambda t: _splice(t[0][0].render() + t[0][1], t[1]))))
def test_the_envelope_parser_takes_any_bytes_and_what_it_accepts_round_trips(plaintext: bytes) -> None:
    try:
        header, secret = envelope.parse(plaintext)
    except envelope.EnvelopeError as exc:
        assert str(exc)
        return
    assert header.render() + secret.reveal() == plaintext


def _splice(plaintext: bytes, edits: list[tuple[int, bytes]]) -> bytes:
    """Several edits at once: at each position, replace as many bytes as are given."""
    for position, replacement in edits:
        position %= len(plaintext) + 1
        plaintext = plaintext[:position] + replacement + plaintext[position + len(replacement):]
    return plaintext
