"""The sections of docs/benchmarks.md that benchmarks other than run.py keep (between markers).

A section is `<!-- NAME:begin -->` ... `<!-- NAME:end -->`; run.py keeps every such section when it
rewrites the file, and each benchmark replaces only its own.
"""

from __future__ import annotations

from pathlib import Path

DOC = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"


def write_section(name: str, text: str, doc: Path = DOC) -> None:
    """Replace section NAME of `doc` with `text` (which holds its own markers), or append it."""
    begin_marker, end_marker = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    old = doc.read_text() if doc.exists() else "# Benchmarks\n"
    begin, end = old.find(begin_marker), old.find(end_marker)
    if begin >= 0 and end > begin:
        new = old[:begin] + text.strip("\n") + old[end + len(end_marker):]
    else:
        new = old.rstrip("\n") + "\n\n" + text.strip("\n") + "\n"
    doc.parent.mkdir(parents=True, exist_ok=True)
    doc.write_text(new)
