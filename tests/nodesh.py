"""Run zetactl's node scripts with this machine's `sh`, exactly as the runner sends them (no SSH needed)."""

from __future__ import annotations

import subprocess

from zetactl.remote import Answer, Sh
from zetactl.remote.frame import split_answer
from zetactl.remote.runner import CHANNEL, whole


def run_local(script: Sh, *, timeout: float = 60) -> Answer:
    """The script through the runner's channel wrapper (prelude, whole-or-nothing guard, framed answer)."""
    proc = subprocess.run(["sh", "-c", CHANNEL.text], input=whole(script), capture_output=True, timeout=timeout)
    answered = split_answer(proc.stdout)
    if answered is None:
        return Answer(proc.returncode, b"", proc.stderr.decode("utf-8", "replace"))
    status, out, err = answered
    return Answer(status, out, proc.stderr.decode("utf-8", "replace") + err.decode("utf-8", "replace"))
