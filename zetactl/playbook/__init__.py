"""Playbooks: YAML files of steps and handlers, loaded and validated before any connection."""

from zetactl.playbook.loader import load_playbook
from zetactl.playbook.model import Playbook, StepDecl

__all__ = ["Playbook", "StepDecl", "load_playbook"]
