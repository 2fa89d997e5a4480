"""Where zetactl keeps its local state: one function, one environment variable.

The state is private: the directory is 0700 and what zetactl writes in it 0600 (run journals and results hold
step errors and command output; credential records, keys). A state directory written by an older zetactl
(0755 directories, 0644 files) is made private the first time it is used (`private`); the lab's directory,
whose files are the nodes' own filesystems, is left to the lab.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

PRIVATE_MARK = ".private-v1"  # in the state directory: its contents were made private
_checked: set[Path] = set()


def state_dir() -> Path:
    """Run journals and other controller state: $ZETACTL_HOME, else $XDG_STATE_HOME/zetactl (made private)."""
    env = os.environ.get("ZETACTL_HOME")
    if env:
        path = Path(env)
    else:
        xdg = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
        path = Path(xdg) / "zetactl"
    if path not in _checked:
        private(path)
        _checked.add(path)
    return path


def private(path: Path) -> None:
    """Make the state directory 0700 (created so), and once, everything an older zetactl left in it: directories
    0700, files 0600 (but the lab's)."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    if stat.S_IMODE(path.stat().st_mode) & 0o077:
        path.chmod(0o700)
    mark = path / PRIVATE_MARK
    if mark.exists():
        return
    for root, dirs, files in os.walk(path):
        here = Path(root)
        if here == path and "lab" in dirs:
            dirs.remove("lab")  # the default lab: its nodes' files keep their own modes
        for name in dirs:
            _restrict(here / name, 0o700)
        for name in files:
            _restrict(here / name, 0o600)
    mark.touch(mode=0o600)


def _restrict(path: Path, mode: int) -> None:
    try:
        current = path.lstat()
        if not stat.S_ISLNK(current.st_mode) and stat.S_IMODE(current.st_mode) & 0o077:
            path.chmod(stat.S_IMODE(current.st_mode) & mode)
    except OSError:
        pass  # gone meanwhile, or not ours: nothing to protect there


def default_lab_dir() -> Path:
    return state_dir() / "lab"
