"""Controller-side file writes: a temp file in the same directory, fsync, then rename.

A reader (node_exporter, a second zetactl, a crash) sees the old file or the new one, never half;
the temp name is unique, so two writers never truncate each other's temp file. A file is private (0600) unless
its writer says otherwise (a Prometheus textfile, known_hosts, a public key).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def write_atomic(path: Path, data: bytes | str, mode: int = 0o600, *, folder_mode: int = 0o700) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=folder_mode)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data.encode() if isinstance(data, str) else data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
