"""Inventory models: plain frozen records, built once by the loader and never mutated."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zetactl.errors import BadInput


@dataclass(frozen=True)
class Host:
    name: str
    address: str
    port: int
    user: str
    key_file: Path | None
    known_hosts: Path
    groups: tuple[str, ...]  # every group the host is in, ancestors included, shallowest first
    vars: Mapping[str, Any] = field(repr=False)  # merged inventory vars (all < groups < host)
    source: str = ""  # "file:line" where the host is declared

    @property
    def role(self) -> str | None:
        role = self.vars.get("zeta_role")
        return str(role) if role is not None else None


@dataclass(frozen=True)
class Group:
    name: str
    hosts: tuple[str, ...]  # hosts declared directly in this group
    children: tuple[str, ...]
    vars: Mapping[str, Any] = field(repr=False)
    depth: int = 0


@dataclass(frozen=True)
class Inventory:
    path: Path
    hosts: Mapping[str, Host]  # in declaration order
    groups: Mapping[str, Group]

    def host(self, name: str) -> Host:
        """The named host; BadInput (exit 4, nothing touched) when the inventory has none by that name."""
        try:
            return self.hosts[name]
        except KeyError:
            raise BadInput(f"unknown host {name!r} in {self.path}") from None

    def group_hosts(self, group: str) -> list[str]:
        """All hosts of a group, its descendants included, in inventory order."""
        return [h for h, host in self.hosts.items() if group in host.groups]
