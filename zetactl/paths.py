"""Where zetactl keeps its local state: one function, one environment variable."""

from __future__ import annotations

import os
from pathlib import Path


def state_dir() -> Path:
    """Run journals and other controller state: $ZETACTL_HOME, else $XDG_STATE_HOME/zetactl."""
    env = os.environ.get("ZETACTL_HOME")
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(xdg) / "zetactl"


def default_lab_dir() -> Path:
    return state_dir() / "lab"
