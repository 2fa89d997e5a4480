"""Host patterns, as in Ansible: `web*,db1:&prod:!db2`, groups, globs, `~regex`, `all`.

Plain items are unioned in order, then every `&item` intersects, then every `!item` excludes.
An item that matches no host and no group is an error: a typo never silently selects nothing.
"""

from __future__ import annotations

import fnmatch
import re

from zetactl.errors import BadInput
from zetactl.inventory.model import Inventory


def split_pattern(pattern: str) -> list[str]:
    items = [item.strip() for item in re.split(r"[,:]", pattern)]
    return [item for item in items if item]


def _match(inventory: Inventory, item: str, origin: str) -> set[str]:
    if item in ("all", "*"):
        return set(inventory.hosts)
    if item in inventory.groups:
        return set(inventory.group_hosts(item))
    if item in inventory.hosts:
        return {item}
    if item.startswith("~"):
        try:
            regex = re.compile(item[1:])
        except re.error as exc:
            raise BadInput(f"{origin}: bad regular expression {item!r}: {exc}") from None
        names = {h for h in inventory.hosts if regex.search(h)}
        names |= {h for g in inventory.groups if regex.search(g) for h in inventory.group_hosts(g)}
    elif any(c in item for c in "*?["):
        names = {h for h in inventory.hosts if fnmatch.fnmatchcase(h, item)}
        names |= {h for g in inventory.groups if fnmatch.fnmatchcase(g, item) for h in inventory.group_hosts(g)}
    else:
        raise BadInput(f"{origin}: unknown host or group {item!r} (see `zetactl inventory list`)")
    if not names:
        raise BadInput(f"{origin}: {item!r} matches no host or group")
    return names


def select_hosts(inventory: Inventory, pattern: str, origin: str = "--limit") -> list[str]:
    """Host names matching `pattern`, in inventory order."""
    items = split_pattern(pattern)
    if not items:
        raise BadInput(f"{origin}: empty host pattern")
    union: set[str] = set()
    intersections: list[set[str]] = []
    exclusions: set[str] = set()
    for item in items:
        if item.startswith("!"):
            exclusions |= _match(inventory, item[1:], origin)
        elif item.startswith("&"):
            intersections.append(_match(inventory, item[1:], origin))
        else:
            union |= _match(inventory, item, origin)
    if not any(not i.startswith(("!", "&")) for i in items):
        union = set(inventory.hosts)
    for group in intersections:
        union &= group
    union -= exclusions
    return [h for h in inventory.hosts if h in union]
