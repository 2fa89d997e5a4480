"""The one answer format of every script zetactl runs on a node, and the one parser for it.

A script answers records, each written by the node-side `zf` (scripts/prelude.sh):

    RS TAG SP BYTES LF VALUE ETX         RS = 0x1e, ETX = 0x03, BYTES = the length of VALUE in bytes

The parser takes exactly BYTES bytes for a value, so what a node holds (a file name, a link target, a file's
content, a command's output) is data and never framing. It is strict: a byte outside a record, a malformed header,
a value cut short and a tag that appears twice are each an error (`BadAnswer`), never "first wins".

Values that carry node names inside them are encoded by the node before they get here: `stat` C-quotes names and
link targets (`stat_entries`), `sha256sum` escapes names (`sha_lines`), file contents travel in base64.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

from zetactl.errors import ZetaError

RS = 0x1E
ETX = b"\x03"
_TAG = re.compile(rb"[A-Za-z0-9_.:@-]{1,200}")


class BadAnswer(ZetaError):
    """A node's answer does not follow the format: nothing in it is believed."""


def _preview(data: bytes) -> str:
    return shown(data[:40].decode("utf-8", "replace"), line=True) + ("..." if len(data) > 40 else "")


class Records(Mapping[str, bytes]):
    """The records of one answer, by tag (in the order they came)."""

    def __init__(self, records: dict[str, bytes]) -> None:
        self._records = records

    def __getitem__(self, tag: str) -> bytes:
        return self._records[tag]

    def __iter__(self) -> Iterator[str]:
        return iter(self._records)

    def __len__(self) -> int:
        return len(self._records)

    def text(self, tag: str, default: str = "") -> str:
        """A record's value as text (bytes that are not UTF-8 kept as surrogate escapes: compare, don't print)."""
        value = self._records.get(tag)
        return default if value is None else decode(value)

    def under(self, prefix: str) -> dict[str, str]:
        """The fields `PREFIX.NAME` of one part of a script (what `zv NAME VALUE` wrote with zk=PREFIX), by NAME."""
        start = prefix + "."
        return {tag[len(start):]: decode(value) for tag, value in self._records.items() if tag.startswith(start)}


def decode(value: bytes) -> str:
    return value.decode("utf-8", "surrogateescape")


def parse(data: bytes) -> Records:
    """Every record of `data`; BadAnswer if anything in it is not a well-formed record or a tag repeats."""
    records: dict[str, bytes] = {}
    position, end = 0, len(data)
    while position < end:
        if data[position] != RS:
            raise BadAnswer(f"unframed output at byte {position}: {_preview(data[position:])}")
        newline = data.find(b"\n", position)
        if newline < 0:
            raise BadAnswer(f"a record header is cut short at byte {position}")
        tag, space, size = data[position + 1:newline].partition(b" ")
        if not space or not _TAG.fullmatch(tag) or not size.isdigit() or len(size) > 12:
            raise BadAnswer(f"malformed record header at byte {position}: {_preview(data[position:newline])}")
        start, length = newline + 1, int(size)
        stop = start + length
        if stop + 1 > end:
            raise BadAnswer(f"record {tag.decode()} is cut short ({length} bytes announced, {end - start} left)")
        if data[stop:stop + 1] != ETX:
            raise BadAnswer(f"record {tag.decode()} does not end where its length says")
        name = tag.decode()
        if name in records:
            raise BadAnswer(f"record {name} appears twice")
        records[name] = data[start:stop]
        position = stop + 1
    return Records(records)


@dataclass(frozen=True)
class Answer:
    """What one script did: its exit status (None: the connection or the remote shell died), its stdout (the
    records of a framed script), its stderr."""

    rc: int | None
    out: bytes
    err: str
    signal: str | None = None

    def records(self) -> Records:
        return parse(self.out)

    @property
    def text(self) -> str:
        """stdout as text to show (an operator's command): undecodable bytes replaced."""
        return self.out.decode("utf-8", "replace")


def encode(records: Mapping[str, str | bytes]) -> bytes:
    """Records as zf writes them (what a node answers; for tests that stand in for a node)."""
    out = bytearray()
    for tag, value in records.items():
        data = value.encode() if isinstance(value, str) else value
        out += b"\x1e" + tag.encode() + b" " + str(len(data)).encode() + b"\n" + data + ETX
    return bytes(out)


# -- a script's whole answer (zanswer): its stdout, its stderr, its exit status ---------------------------------

_OUT = re.compile(rb"\x1eOUT (\d{1,3}) (\d{1,12}) (\d{1,12})\n")


def answer_header(line: bytes) -> tuple[int, int, int]:
    """(status, stdout bytes, stderr bytes) from zanswer's header line; BadAnswer if it is not one."""
    match = _OUT.fullmatch(line)
    if match is None:
        raise BadAnswer(f"expected a script's answer, got {_preview(line)}")
    return int(match[1]), int(match[2]), int(match[3])


def split_answer(data: bytes) -> tuple[int, bytes, bytes] | None:
    """A channel's whole stdout: (status, stdout, stderr) when it is one complete answer, None when it is empty
    (the script did not run: cut short, or the connection died); BadAnswer when it is anything else."""
    if not data:
        return None
    newline = data.find(b"\n")
    status, out, err = answer_header(data[:newline + 1] if newline >= 0 else data)
    body = data[newline + 1:]
    if len(body) != out + err:
        raise BadAnswer(f"the answer announced {out + err} bytes and brought {len(body)}")
    return status, body[:out], body[out:]


# -- values that carry node names -------------------------------------------------------------------------------

_C_ESCAPES = {ord("a"): 7, ord("b"): 8, ord("f"): 12, ord("n"): 10, ord("r"): 13, ord("t"): 9, ord("v"): 11,
              ord("\\"): 92, ord('"'): 34, ord("'"): 39, ord("?"): 63}


def c_string(data: bytes, position: int) -> tuple[bytes, int]:
    """A C-quoted string (stat's QUOTING_STYLE=c) starting at `position`: (its bytes, the position after it)."""
    if data[position:position + 1] != b'"':
        raise BadAnswer(f"expected a quoted name at byte {position}")
    out = bytearray()
    i = position + 1
    while i < len(data):
        byte = data[i]
        if byte == 34:  # "
            return bytes(out), i + 1
        if byte < 32 or byte == 127:
            raise BadAnswer("a raw control byte inside a quoted name")
        if byte != 92:
            out.append(byte)
            i += 1
            continue
        escape = data[i + 1:i + 2]
        if not escape:
            break
        if escape[0] in _C_ESCAPES:
            out.append(_C_ESCAPES[escape[0]])
            i += 2
        elif escape.isdigit():
            digits = re.match(rb"[0-7]{1,3}", data[i + 1:i + 4])
            if digits is None:
                raise BadAnswer("a bad octal escape in a quoted name")
            out.append(int(digits[0], 8) & 0xFF)
            i += 1 + len(digits[0])
        else:
            raise BadAnswer(f"an unknown escape \\{escape.decode('latin-1')} in a quoted name")
    raise BadAnswer("a quoted name is cut short")


TYPES = {"regular file": "file", "regular empty file": "file", "directory": "directory", "symbolic link": "link"}
_ACCOUNT = re.compile(r"[^\x00-\x20\x7f]{1,64}")


@dataclass(frozen=True)
class StatEntry:
    type: str  # file | directory | link | other
    mode: str
    owner: str
    group: str
    size: str
    target: str | None  # a link's target


def stat_entries(value: bytes, wanted: Iterable[str]) -> dict[str, StatEntry]:
    """What `zp_stats` read, by path. A name not asked for, or asked for twice, is BadAnswer."""
    asked = set(wanted)
    found: dict[str, StatEntry] = {}
    if not value:
        return found
    if not value.endswith(b"\x1d"):
        raise BadAnswer("the stat record does not end with its separator")
    for entry in value[:-1].split(b"\x1d"):
        fields = entry.split(b"\x1f")
        if len(fields) != 6:
            raise BadAnswer(f"a stat entry has {len(fields)} fields, not 6")
        kind, mode, owner, group, size = (decode(f) for f in fields[:5])
        if not re.fullmatch(r"[0-7]{1,4}", mode) or not size.isdigit() or not _ACCOUNT.fullmatch(owner) \
                or not _ACCOUNT.fullmatch(group) or not re.fullmatch(r"[a-z ]{1,40}", kind):
            raise BadAnswer(f"a malformed stat entry: {shown(decode(entry[:80]), line=True)}")
        raw_name, after = c_string(fields[5], 0)
        target: str | None = None
        if fields[5][after:after + 4] == b" -> ":
            raw_target, after = c_string(fields[5], after + 4)
            target = decode(raw_target)
        if after != len(fields[5]):
            raise BadAnswer("trailing bytes after a quoted name in a stat entry")
        name = decode(raw_name)
        if name not in asked or name in found:
            raise BadAnswer(f"stat answered for {shown(name, line=True)}, which was not asked for (or twice)")
        kind = TYPES.get(kind, "other")
        found[name] = StatEntry(kind, mode, owner, group, size, target if kind == "link" else None)
    return found


_SHA = re.compile(rb"(\\?)([0-9a-f]{64})  (.*)", re.S)


def sha_lines(value: bytes, wanted: Iterable[str]) -> dict[str, str]:
    """What `zp_shas` read: path -> sha256. sha256sum escapes a name holding `\\`, LF or CR with a leading `\\`."""
    asked = set(wanted)
    found: dict[str, str] = {}
    for line in value.split(b"\n") if value else []:
        match = _SHA.fullmatch(line)
        if match is None:
            raise BadAnswer(f"a malformed line of file hashes: {_preview(line)}")
        raw = match[3]
        if match[1]:
            if not re.fullmatch(rb"(?:[^\\]|\\[nr\\])*", raw, re.S):
                raise BadAnswer(f"an unknown escape in a file hash's name: {_preview(line)}")
            raw = re.sub(rb"\\([nr\\])", lambda m: {b"n": b"\n", b"r": b"\r", b"\\": b"\\"}[m[1]], raw)
        name = decode(raw)
        if name not in asked or name in found:
            raise BadAnswer(f"a file hash answered for {shown(name, line=True)}, which was not asked for (or twice)")
        found[name] = match[2].decode()
    return found


def number(text: str) -> int | None:
    """A decimal number a node wrote (ASCII digits only: str.isdigit takes `²` too, which int() refuses)."""
    return int(text) if re.fullmatch(r"[0-9]{1,18}", text) else None


def fields(text: str, what: str) -> dict[str, str]:
    """`key value` lines (a marker file zetactl wrote on the node), strictly: a key twice is BadAnswer."""
    found: dict[str, str] = {}
    for line in text.split("\n"):
        if not line:
            continue
        key, _, value = line.partition(" ")
        if not re.fullmatch(r"[a-z][a-z0-9_-]{0,40}", key):
            raise BadAnswer(f"{what}: a malformed line {shown(line[:60], line=True)}")
        if key in found:
            raise BadAnswer(f"{what}: {key} appears twice")
        found[key] = value
    return found


_UNPRINTABLE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")
_UNPRINTABLE_LINE = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


def shown(text: str, *, line: bool = False) -> str:
    """Node text made safe to print: control bytes (but newline and tab, unless `line`: one line) and bytes that
    are not UTF-8 as escapes."""
    def escape(match: re.Match[str]) -> str:
        char = match[0]
        code = ord(char)
        if char in "\n\t\r":
            return {"\n": "\\n", "\t": "\\t", "\r": "\\r"}[char]
        if 0xDC80 <= code <= 0xDCFF:  # a byte that was not UTF-8 (surrogateescape)
            return f"\\x{code - 0xDC00:02x}"
        return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"

    return (_UNPRINTABLE_LINE if line else _UNPRINTABLE).sub(escape, text)
