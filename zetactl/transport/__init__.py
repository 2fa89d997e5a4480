"""SSH transport: one asyncssh connection per host, host keys always checked against the pin."""

from zetactl.transport.ssh import (
    ConnectOptions,
    HostKeyRefused,
    Unreachable,
    connect,
    fingerprint,
    offered_key,
)

__all__ = ["ConnectOptions", "HostKeyRefused", "Unreachable", "connect", "fingerprint", "offered_key"]
