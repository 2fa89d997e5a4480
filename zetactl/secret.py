"""Secret values: a type that never prints, logs or serialises itself.

A Secret holds bytes; `repr`, `str` and `format` give a placeholder, pickling and JSON refuse it,
and only `reveal()` gives the bytes back (to seal them, never to log them). The logging filter
in `install_redaction` is a backstop for values that escaped the type.
"""

from __future__ import annotations

import hashlib
import logging
from typing import Any, NoReturn

PLACEHOLDER = "<secret>"


class Secret:
    __slots__ = ("_value",)
    _value: bytes

    def __init__(self, value: bytes | str) -> None:
        data = value.encode() if isinstance(value, str) else bytes(value)
        if not data:
            raise ValueError("a secret cannot be empty")
        object.__setattr__(self, "_value", data)
        _REGISTRY.add(data)
        if data.strip() and data.strip() != data:
            _REGISTRY.add(data.strip())  # a token read from a file usually ends in a newline

    def reveal(self) -> bytes:
        return bytes(self._value)

    def __len__(self) -> int:
        return len(self._value)

    def __repr__(self) -> str:
        return f"Secret({PLACEHOLDER})"

    def __str__(self) -> str:
        return PLACEHOLDER

    def __format__(self, spec: str) -> str:
        return PLACEHOLDER

    def __eq__(self, other: object) -> bool:
        import hmac

        return isinstance(other, Secret) and hmac.compare_digest(self._value, other._value)

    def __hash__(self) -> int:
        return hash(hashlib.sha256(self._value).digest())

    def __setattr__(self, name: str, value: Any) -> NoReturn:
        raise AttributeError("a Secret is immutable")

    def __reduce__(self) -> NoReturn:
        raise TypeError("a Secret cannot be pickled or copied out")

    def __getstate__(self) -> NoReturn:
        raise TypeError("a Secret cannot be serialised")


_REGISTRY: set[bytes] = set()  # every secret value this process has seen (for the logging backstop)


class RedactingFilter(logging.Filter):
    """Replaces any known secret value in a log record by the placeholder (the backstop)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not _REGISTRY:
            return True
        message = record.getMessage()
        changed = message
        for value in _REGISTRY:
            text = value.decode(errors="ignore")
            if text and text in changed:
                changed = changed.replace(text, PLACEHOLDER)
        if changed != message:
            record.msg, record.args = changed, None
        return True


def install_redaction() -> None:
    """Attach the backstop filter to every handler of the root logger (and asyncssh's)."""
    backstop = RedactingFilter()
    for name in ("", "asyncssh"):
        logger = logging.getLogger(name)
        logger.addFilter(backstop)
        for handler in logger.handlers:
            handler.addFilter(backstop)
