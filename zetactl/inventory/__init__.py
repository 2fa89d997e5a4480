"""Inventory: Ansible-shaped YAML hosts and groups, and `--limit` host patterns."""

from zetactl.inventory.loader import load_inventory
from zetactl.inventory.model import Group, Host, Inventory
from zetactl.inventory.patterns import select_hosts

__all__ = ["Group", "Host", "Inventory", "load_inventory", "select_hosts"]
