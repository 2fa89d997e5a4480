"""Options and helpers shared by the commands."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from zetactl.errors import BadInput
from zetactl.inventory.loader import DEFAULT_INVENTORY
from zetactl.remote import names
from zetactl.yamlsrc import check_bounds, load_yaml, load_yaml_text

InventoryOpt = Annotated[
    Path,
    typer.Option("--inventory", "-i", help="Inventory file (Ansible YAML shape). Default: $ZETACTL_INVENTORY "
                 "or inventory/hosts.yml.", show_default=False),
]
LimitOpt = Annotated[str | None, typer.Option("--limit", "-l", help="Host pattern: names, globs, groups, "
                                              "'!exclude', '&intersect', e.g. 'control_plane:!lab-002'.")]
FormatOpt = Annotated[str, typer.Option("--format", help="table (people) or json (programs).")]


def default_inventory() -> Path:
    return Path(os.environ.get("ZETACTL_INVENTORY", str(DEFAULT_INVENTORY)))


def inventory_path(value: Path | None) -> Path:
    return value if value is not None else default_inventory()


def check_format(value: str, allowed: tuple[str, ...] = ("table", "json")) -> str:
    if value not in allowed:
        raise BadInput(f"--format must be one of {', '.join(allowed)}, not {value!r}")
    return value


def parse_extra_vars(items: list[str] | None) -> dict[str, Any]:
    """-e NAME=VALUE (the value is read as a YAML scalar) or -e @file.yml."""
    result: dict[str, Any] = {}
    for item in items or []:
        if item.startswith("@"):
            data = load_yaml(Path(item[1:]))  # bounded like any playbook or inventory, errors with their line
            if not isinstance(data, dict):
                raise BadInput(f"-e {item}: the file must hold a mapping of variables")
            result.update(data)
            continue
        name, sep, value = item.partition("=")
        if not sep or not name.isidentifier():
            raise BadInput(f"-e expects NAME=VALUE or @FILE, not {names.show(item)}")
        try:
            result[name] = load_yaml_text(value, f"-e {name}") if value else ""
        except BadInput as exc:
            if "invalid YAML" not in exc.message:
                raise  # out of bounds (a number beyond 64 bits, text that is not Unicode): refused
            result[name] = value
        check_bounds(result[name], f"-e {name}")
    return result


def err(message: str) -> None:
    sys.stderr.write(message.rstrip("\n") + "\n")
