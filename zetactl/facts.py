"""Facts: what a node is, read in the run's first round trip, for `when` and templates.

`facts.nixos_version`, `facts.nixos_release`, `facts.generation`, `facts.current_system`,
`facts.booted_system`, `facts.profile_system`, `facts.reboot_needed`, `facts.failed_units`,
`facts.hostname`, `facts.boot_id`. A step whose options, `when` or template read `facts` is
rendered on the controller once its host's facts arrive (the plan still renders everything else).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NoReturn

from zetactl.remote import Sh, source
from zetactl.remote.frame import number


def facts_script() -> Sh:
    """The facts, as fields of the part that reads them (zv NAME VALUE)."""
    return source("facts.sh")


def parse_facts(observed: Mapping[str, str]) -> dict[str, Any]:
    version = observed.get("nixos_version", "").strip()
    generation = observed.get("generation", "")
    return {
        "nixos_version": version,
        "nixos_release": version.split(".")[0] + "." + version.split(".")[1] if version.count(".") >= 1 else "",
        "generation": number(generation),
        "current_system": observed.get("current_system", ""),
        "booted_system": observed.get("booted_system", ""),
        "profile_system": observed.get("profile_system", ""),
        "reboot_needed": observed.get("reboot_needed") == "yes",
        "failed_units": observed.get("failed_units", "").split(),
        "hostname": observed.get("hostname", ""),
        "boot_id": observed.get("boot_id", ""),
    }


class NeedsFacts(Exception):
    """Raised while rendering at plan time when a value reads `facts`: render it on the host."""


class FactsPending:
    """Stands for `facts` at plan time: any use of it defers the step until the host is reached."""

    def _defer(self, *args: object) -> NoReturn:
        raise NeedsFacts

    def __getattr__(self, name: str) -> NoReturn:
        if name.startswith("__"):
            raise AttributeError(name)  # protocol lookups (copy, hasattr __html__) are not uses
        raise NeedsFacts

    __getitem__ = _defer
    __str__ = _defer
    __bool__ = _defer
    __iter__ = _defer
    __len__ = _defer
    __eq__ = _defer
    __hash__ = None  # type: ignore[assignment]


FACTS_PENDING = FactsPending()
