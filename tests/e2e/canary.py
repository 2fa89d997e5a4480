"""Helpers shared by the tests that handle secrets on lab nodes: `node_file` (a path as a node sees it), and
the canary search: a debug log of asyncssh (the remote command lines), a sampler of the command lines of every
process inside the lab nodes, and a byte search over file trees."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

from tests.conftest import ROOT, Cli, Result
from zetactl.lab import Lab

SITECUSTOMIZE = """\
import logging, os
_log = os.environ.get("CREDTEST_DEBUG_LOG")
if _log:
    logging.basicConfig(level=logging.DEBUG, format="%(asctime)s %(name)s %(levelname)s %(message)s",
                        handlers=[logging.FileHandler(_log), logging.StreamHandler()])
    import asyncssh
    asyncssh.set_debug_level(2)
"""


class CmdlineSampler(threading.Thread):
    """Samples the command lines of every process inside the lab nodes (their mount namespaces).

    Best effort (a short-lived process can slip between two samples); long-lived ones such as the
    engine's `flock ... sh -c ...` lock channel are always seen.
    """

    def __init__(self, lab: Lab) -> None:
        super().__init__(daemon=True)
        self.lab = lab
        self.seen: set[str] = set()
        self.stop = threading.Event()

    def namespaces(self) -> set[str]:
        found = set()
        for node in self.lab.nodes():
            with contextlib.suppress(OSError):
                found.add(os.readlink(f"/proc/{node.pid}/ns/mnt"))
        return found

    def run(self) -> None:
        refreshed, namespaces = 0.0, set()
        while not self.stop.is_set():
            if time.monotonic() - refreshed > 0.5:
                namespaces, refreshed = self.namespaces(), time.monotonic()
            for entry in os.scandir("/proc"):
                if not entry.name.isdigit():
                    continue
                try:
                    if os.readlink(f"/proc/{entry.name}/ns/mnt") in namespaces:
                        with open(f"/proc/{entry.name}/cmdline", "rb") as fh:
                            self.seen.add(fh.read().replace(b"\0", b" ").decode(errors="replace"))
                except OSError:
                    continue
            time.sleep(0.002)


def _hits(root: Path, needles: list[bytes], skip: tuple[Path, ...] = ()) -> list[str]:
    found = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        if any(Path(dirpath).is_relative_to(s) for s in skip):
            dirnames[:] = []
            continue
        for filename in filenames:
            path = Path(dirpath) / filename
            if path.is_symlink() or not path.is_file():
                continue
            try:
                data = path.read_bytes()
            except OSError:
                continue
            found += [f"{path}: {n!r}" for n in needles if n in data]
    return found


def node_file(lab: Lab, host: str, path: str) -> Path:
    """`path` as `host` sees it, following symlinks inside the node (they are absolute node paths)."""
    node = lab.node(host)
    current = node.path(path)
    for _ in range(10):
        if not current.is_symlink():
            return current
        target = os.readlink(current)
        if not target.startswith("/"):
            target = str(Path("/" + str(current.relative_to(node.path("/"))).lstrip("/")).parent / target)
        current = node.path(target)
    raise AssertionError(f"symlink loop at {path} on {host}")


class CredCli(Cli):
    """The real CLI with stdin that is never a terminal (DEVNULL, or the bytes given)."""

    def __init__(self, home: Path, extra_env: dict[str, str] | None = None) -> None:
        super().__init__(home)
        self.env.update(extra_env or {})
        self.outputs: list[str] = []  # every stdout and stderr, for the canary search

    def __call__(self, *args: str, timeout: float = 180, check_rc: int | None = None,  # type: ignore[override]
                 input: bytes | None = None) -> Result:
        proc = subprocess.run([sys.executable, "-m", "zetactl", *args], capture_output=True, env=self.env,
                              timeout=timeout, cwd=ROOT, input=input,
                              stdin=None if input is not None else subprocess.DEVNULL)
        result = Result(list(args), proc.returncode, proc.stdout.decode(errors="replace"),
                        proc.stderr.decode(errors="replace"))
        self.outputs += [result.stdout, result.stderr]
        if check_rc is not None:
            assert result.returncode == check_rc, result
        return result
