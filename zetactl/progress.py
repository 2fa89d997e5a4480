"""Live progress on stderr: a rich progress bar on a terminal, one line per finished host otherwise."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, TextIO

from zetactl.engine.outcome import HostOutcome, StepRecord
from zetactl.engine.states import State

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress


class RunProgress:
    def __init__(self, total_hosts: int, total_steps: int, *, enabled: bool = True, stream: TextIO | None = None
                 ) -> None:
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.counts = {"changed": 0, "failed": 0, "unreachable": 0}
        self.progress: Progress | None = None
        self.console: Console | None = None
        if not enabled:
            return  # rich is not even imported (--no-progress, --format json: scripts and benchmarks)
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.console = Console(file=self.stream)
        if self.console.is_terminal:
            self.progress = Progress(
                TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                TextColumn("{task.fields[counts]}"), TimeElapsedColumn(), console=self.console,
            )
            self.hosts_task = self.progress.add_task("hosts", total=total_hosts, counts="")
            self.steps_task = self.progress.add_task("steps", total=total_steps, counts="")

    def __enter__(self) -> RunProgress:
        if self.progress is not None:
            self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.progress is not None:
            self.progress.stop()

    def step_done(self, host: str, record: StepRecord) -> None:
        if self.progress is not None and not record.handler:
            self.progress.advance(self.steps_task)
        if record.state == State.FAILED and self.progress is not None:
            last = record.error.rstrip(chr(10)).split(chr(10))[-1]
            self._line(f"[red]FAILED[/red] {escape(host)}: {escape(record.name)}: {escape(last)}")

    def host_done(self, outcome: HostOutcome) -> None:
        if outcome.status in self.counts:
            self.counts[outcome.status] += 1
        if self.progress is not None:
            text = "  ".join(f"{k} {v}" for k, v in self.counts.items() if v)
            self.progress.update(self.hosts_task, advance=1, counts=text)
        elif self.enabled:
            changed = outcome.count("changed")
            self._line(escape(f"{outcome.host}: {outcome.status} ({changed} changed, {outcome.count('ok')} ok) "
                              f"{outcome.elapsed:.2f}s" + (f": {outcome.error}" if outcome.error else "")))

    def _line(self, text: str) -> None:
        if self.progress is not None:
            self.progress.console.print(text, highlight=False)
        elif self.console is not None:
            self.console.print(text, highlight=False, markup=True, soft_wrap=True)


def escape(text: str) -> str:
    """Node text as plain text for rich: `[/x]` in a step's output is not markup (it raised MarkupError)."""
    from rich.markup import escape as rich_escape  # rich is loaded already when there is anything to print

    return rich_escape(text)
