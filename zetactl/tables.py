"""Tables for people: tabulate, imported on first use (it costs a command's start about 30 ms, with the
package metadata it reads; JSON and Prometheus output never need it)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any


def tabulate(rows: Iterable[Iterable[Any]], headers: Sequence[str] = (), **options: Any) -> str:
    from tabulate import tabulate as render

    return str(render(rows, headers=headers, **options))
