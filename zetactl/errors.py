"""Domain errors and the exit codes they map to (the CLI is the only place that exits)."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Documented, distinct exit codes (README, "Exit codes")."""

    OK = 0
    FAILED = 2  # a step failed on some host
    UNREACHABLE = 3  # some host unreachable, none failed
    BAD_INPUT = 4  # bad input: nothing was touched
    INTERRUPTED = 130  # Ctrl-C: journal consistent, resumable


class ZetaError(Exception):
    """Base of every error zetactl reports to the user."""

    exit_code: ExitCode = ExitCode.FAILED


class BadInput(ZetaError):
    """Bad playbook, inventory or command-line input, found before any host is touched."""

    exit_code = ExitCode.BAD_INPUT

    def __init__(self, message: str, *, file: str | None = None, line: int | None = None) -> None:
        self.message = message
        self.file = file
        self.line = line
        super().__init__(self.located())

    def located(self) -> str:
        if self.file and self.line:
            return f"{self.file}:{self.line}: {self.message}"
        if self.file:
            return f"{self.file}: {self.message}"
        return self.message


class LabError(ZetaError):
    """The lab cannot do what was asked (no privileges, sshd missing, ...)."""

    exit_code = ExitCode.FAILED


class Unreachable(ZetaError):
    """The host could not be reached or the connection was lost."""

    exit_code = ExitCode.UNREACHABLE
