"""Health gate between waves: the checks a playbook declares (run by engine/gate.py).

    gate:
      - unit: zeta-otto.service          # the unit is active
      - command: "test -e /run/k3s/ready" # exits 0 (read-only check, runs on the node)
      - http: "http://127.0.0.1:8080/healthz"  # answers 2xx (or `expect: 204`), asked from the node
        timeout: 30                       # seconds this check may take to pass (default 60)

A rollout with a gate stops when a gate fails on any host of a wave; with a gate and no
`max_fail`, the failure budget is 0 (one failed host stops the rollout).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from zetactl.errors import BadInput
from zetactl.remote import names
from zetactl.steps.base import Where

KINDS = ("unit", "command", "http")
DEFAULT_TIMEOUT = 60.0


@dataclass(frozen=True)
class GateCheck:
    kind: str
    target: str
    timeout: float = DEFAULT_TIMEOUT
    expect: int | None = None  # http: exact status; None means any 2xx

    def describe(self) -> str:
        return f"{self.kind} {self.target}"


def parse_check(raw: Any, where: Where, *, rendered: bool = False) -> GateCheck:
    """One rendered gate entry -> GateCheck; raises BadInput at the playbook's line."""
    if not isinstance(raw, dict):
        raise where.error("gate: each check is a mapping with one of unit, command, http")
    kinds = [k for k in KINDS if k in raw]
    unknown = set(raw) - {*KINDS, "timeout", "expect"}
    if unknown:
        raise where.error(f"gate: unknown key {sorted(unknown)[0]!r} (known: {', '.join(KINDS)}, timeout, expect)")
    if len(kinds) != 1:
        raise where.error("gate: each check has exactly one of unit, command, http")
    kind = kinds[0]
    target = raw[kind]
    if not isinstance(target, str) or not target.strip():
        raise where.error(f"gate: {kind} must be a non-empty string")
    timeout = raw.get("timeout", DEFAULT_TIMEOUT)
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not 0 < timeout <= 3600:
        raise where.error("gate: timeout must be a number of seconds between 0 and 3600")
    expect = raw.get("expect")
    if expect is not None and (kind != "http" or isinstance(expect, bool) or not isinstance(expect, int)):
        raise where.error("gate: expect is an HTTP status code, only for http checks")
    if "{" in target and not rendered:  # rendered per host later; its value is checked then
        return GateCheck(kind, target.strip(), float(timeout), expect)
    if kind == "http":
        if any(ord(c) < 33 or ord(c) == 127 for c in target):
            raise where.error(f"gate: an http URL has no spaces or control characters, not {names.show(target)}")
        url = urlsplit(target)
        if url.username is not None or url.password is not None:
            raise where.error("gate: an http check takes no credentials in its URL (they would be logged)")
        if url.scheme != "http" or not url.hostname:
            raise where.error(f"gate: http checks take an http:// URL, not {target!r} "
                              "(for https use `command: curl -fsS https://...`)")
    try:
        target = names.unit(target.strip(), "gate: unit") if kind == "unit" else names.text(target, f"gate: {kind}")
    except BadInput as exc:
        raise where.error(exc.message) from None
    return GateCheck(kind, target.strip(), float(timeout), expect)
