"""Waves and failure budgets: `--serial 1,10%,50%` and `--max-fail 3` turned into numbers."""

from __future__ import annotations

import math
from collections.abc import Sequence

from zetactl.errors import BadInput


def parse_amount(text: str, total: int, what: str) -> int:
    text = text.strip()
    try:
        if text.endswith("%"):
            percent = float(text[:-1])
            if not 0 <= percent <= 100:
                raise ValueError
            return max(1, math.ceil(total * percent / 100)) if what == "--serial" else math.floor(total * percent / 100)
        value = int(text)
        if value < 0 or (what == "--serial" and value == 0):
            raise ValueError
        return value
    except ValueError:
        raise BadInput(f"{what}: expected a count or a percentage, not {text!r}") from None


def make_waves(hosts: Sequence[str], serial: Sequence[str]) -> list[list[str]]:
    if not serial:
        return [list(hosts)] if hosts else []
    sizes = [parse_amount(s, len(hosts), "--serial") for s in serial]
    waves: list[list[str]] = []
    position = 0
    index = 0
    while position < len(hosts):
        size = sizes[min(index, len(sizes) - 1)]
        waves.append(list(hosts[position : position + size]))
        position += size
        index += 1
    return waves
