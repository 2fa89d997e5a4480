"""A fresh lab for one benchmark: stopped and removed first if one is left in its directory, stopped at
the end (also on an error or Ctrl-C)."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

ZETACTL = Path(__file__).resolve().parent.parent / ".venv" / "bin" / "zetactl"


@contextmanager
def fresh_lab(directory: Path, nodes: int, subnet: int, env: Mapping[str, str]) -> Iterator[Path]:
    """`zetactl lab up NODES` in DIRECTORY on 127.0.SUBNET.x; yields the lab's inventory."""
    if (directory / "lab.json").exists():
        subprocess.run([str(ZETACTL), "lab", "down", "--dir", str(directory)], env=dict(env), check=False)
    shutil.rmtree(directory, ignore_errors=True)
    subprocess.run([str(ZETACTL), "lab", "up", str(nodes), "--dir", str(directory), "--subnet", str(subnet)],
                   env=dict(env), check=True, capture_output=True)
    try:
        yield directory / "inventory.yml"
    finally:
        subprocess.run([str(ZETACTL), "lab", "down", "--dir", str(directory)], env=dict(env), check=False,
                       capture_output=True)
