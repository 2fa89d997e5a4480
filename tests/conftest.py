"""Shared fixtures: a real lab of OpenSSH nodes on loopback, and a way to run the real CLI."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from zetactl.lab import Lab

ROOT = Path(__file__).resolve().parent.parent
needs_lab = pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("sshd", path=os.environ.get("PATH", "") + ":/usr/sbin"),
    reason="the lab needs root and openssh-server",
)


@dataclass
class Result:
    args: list[str]
    returncode: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)

    def __repr__(self) -> str:
        return f"Result(rc={self.returncode}, args={self.args}, stdout=...{self.stdout[-1500:]}, " \
               f"stderr=...{self.stderr[-1500:]})"


class Cli:
    """Runs `python -m zetactl` as a user would, with its own state directory."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.env = {**os.environ, "ZETACTL_HOME": str(home), "COLUMNS": "200"}

    def __call__(self, *args: str, timeout: float = 120, check_rc: int | None = None) -> Result:
        proc = subprocess.run([sys.executable, "-m", "zetactl", *args], capture_output=True, text=True,
                              env=self.env, timeout=timeout, cwd=ROOT)
        result = Result(list(args), proc.returncode, proc.stdout, proc.stderr)
        if check_rc is not None:
            assert result.returncode == check_rc, result
        return result

    def popen(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen([sys.executable, "-m", "zetactl", *args], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env=self.env, cwd=ROOT)

    def journal(self, run_id: str) -> list[dict[str, Any]]:
        path = self.home / "runs" / run_id / "journal.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    def run_ids(self) -> list[str]:
        runs = self.home / "runs"
        return sorted(p.name for p in runs.iterdir()) if runs.is_dir() else []


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    return Cli(tmp_path / "zetactl-home")


def _lab(directory: Path, count: int, subnet: int) -> Iterator[Lab]:
    lab = Lab(directory, subnet=subnet)
    try:  # a lab that failed half-way up is stopped too
        lab.up(count)
        yield lab
    finally:
        lab.down()


@pytest.fixture(scope="session")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """Ten nodes shared by tests that only write under their own paths."""
    yield from _lab(tmp_path_factory.mktemp("lab"), 10, subnet=20)


@pytest.fixture
def fault_lab(tmp_path: Path) -> Iterator[Lab]:
    """Three fresh nodes per test, for tests that kill, freeze or rekey nodes."""
    yield from _lab(tmp_path / "faultlab", 3, subnet=30)


def write_playbook(directory: Path, text: str, name: str = "play.yml") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(text)
    return path


def totals(document: dict[str, Any], key: str) -> int:
    return sum(int(host[key]) for host in document["hosts"].values())
