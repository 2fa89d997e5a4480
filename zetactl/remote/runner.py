"""The one runner: every script zetactl runs on a node goes through here, whole or not at all.

Two modes:

    LockSession   the run's lock session: one channel that holds the host lock (scripts/lock.sh) and runs every
                  script of the run on it, so a round trip costs no new SSH session
    run()         a channel of its own on a connection (a sweep's read, a hub's registry change); run_fresh() opens
                  a NEW connection for it (the NixOS confirmation proves the node reachable that way)

Either way the script travels on stdin (never on the command line, so never in `ps` or asyncssh's log), ends with
an end line, and the node runs it only once it has arrived whole: a connection cut mid-transfer runs none of it
(`sh` reading a script would run `rm -rf -- /srv/data/old` cut to `rm -rf -- /srv`). Its answer is one
length-prefixed frame (frame.py), read the same way in both modes.

`exchange()` is the one exception: a node's forced command (the installer's `zeta-bootstrap`, which the SSH key
restricts the login to) runs no script; its command line is still built by the quoting builder.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

import asyncssh

from zetactl.errors import Unreachable, ZetaError
from zetactl.inventory import Host
from zetactl.remote.frame import Answer, BadAnswer, answer_header, shown, split_answer
from zetactl.remote.shell import Sh, lines, script, sh, source
from zetactl.transport.ssh import ConnectOptions, connect

SCRIPT_END = "# zetactl: end of script"
CUT_SHORT = 96  # the exit status of a script that arrived cut short (none of it ran)
LOCK_BUSY = 75
STATE_DIR = "/var/lib/zeta/state"  # the lock, its owner, the last-run marker (zetactl.remote.paths)


class LockBusy(ZetaError):
    """Another controller holds the host's lock (for longer than the wait)."""


def whole(script_: Sh) -> bytes:
    """The script with its end line: what the node checks before it runs any of it."""
    return (script_.text.rstrip("\n") + "\n" + SCRIPT_END + "\n").encode()


def _command(first: Sh, *parts: Sh) -> Sh:
    """`sh -c` with the prelude and a wrapper: the command line holds zetactl's own text and no value but the
    ones quoted by script(). Its first line (what asyncssh's log shows of it) names the wrapper."""
    return sh(Sh("sh -c"), lines(first, source("prelude.sh"), *parts).text)


CHANNEL = _command(Sh("# zetactl channel: a script on stdin, run whole or not at all"), source("channel.sh"))
RAW = sh(Sh("sh -c"), lines(Sh("# zetactl raw: the command of an operator on stdin, run whole or not at all"),
                            source("raw.sh")).text)
LOCK_SESSION = Sh("# zetactl lock session: the scripts of a run on stdin, under the host lock")


def session_refused(exc: asyncssh.ChannelOpenError) -> str:
    """The message for a node that takes the connection but refuses a session (sshd's MaxSessions, a restricted
    key): nothing ran there."""
    return f"the node refused a new SSH session ({exc.reason or 'no reason given'}); nothing ran there"


async def run(conn: asyncssh.SSHClientConnection, script_: Sh, *, raw: bool = False) -> Answer:
    """Run a script on a channel of its own. `raw`: an operator's command, whose output is shown as it is."""
    try:
        done = await conn.run(RAW.text if raw else CHANNEL.text, input=whole(script_), check=False, encoding=None)
    except asyncssh.ChannelOpenError as exc:
        raise Unreachable(session_refused(exc)) from None
    except (OSError, asyncssh.Error) as exc:
        raise Unreachable(f"connection lost: {exc}") from None
    out = _bytes(done.stdout)
    err = _bytes(done.stderr).decode("utf-8", "replace")
    signal = str(done.exit_signal) if done.exit_signal else None
    if raw:
        return Answer(done.exit_status, out, err, signal)
    answered = split_answer(out)
    if answered is None:  # nothing ran (cut short), or the shell died before it answered
        return Answer(done.exit_status if done.exit_status not in (None, 0) else None, b"", err, signal)
    status, stdout, stderr = answered
    return Answer(status, stdout, err + stderr.decode("utf-8", "replace"), signal)


async def run_fresh(host: Host, options: ConnectOptions, script_: Sh, timeout: float) -> Answer:
    """Open a NEW connection (host key checked), run the script on it, close it; Unreachable when none gets through
    within `timeout` seconds."""
    try:
        async with asyncio.timeout(timeout + 2):
            conn = await connect(host, options)
            async with conn:
                answer = await run(conn, script_)
    except TimeoutError:
        raise Unreachable(f"no answer within {timeout:g}s on a fresh connection") from None
    return answer


async def exchange(conn: asyncssh.SSHClientConnection, command: Sh, stdin: bytes = b"") -> Answer:
    """A node's forced command (no script runs: the key restricts the login to that command)."""
    try:
        done = await conn.run(command.text, input=stdin, check=False, encoding=None)
    except asyncssh.ChannelOpenError as exc:
        raise Unreachable(session_refused(exc)) from None
    except (OSError, asyncssh.Error) as exc:
        raise Unreachable(f"connection lost: {exc}") from None
    return Answer(done.exit_status, _bytes(done.stdout), _bytes(done.stderr).decode("utf-8", "replace"))


def lock_command(wait: float, owner: str, state: str = STATE_DIR) -> Sh:
    return _command(LOCK_SESSION, script("lock.sh", STATE=state, WAIT=f"{wait:g}", BUSY=LOCK_BUSY, OWNER=owner))


def marker_lines(values: Mapping[str, str]) -> bytes:
    """The last-run marker as the lock session writes it: `key=value` lines and `end`; a value's control
    characters shown as escapes (a marker line is one line, whatever a playbook is called)."""
    text = "".join(f"{key}={shown(value, line=True)}\n" for key, value in values.items())
    return (text + "end\n").encode()


class LockSession:
    """The run's lock session on a host: holds the lock, runs every script of the run (see lock.sh)."""

    def __init__(self, process: asyncssh.SSHClientProcess[bytes]) -> None:
        self._process: asyncssh.SSHClientProcess[bytes] | None = process

    @property
    def alive(self) -> bool:
        return self._process is not None

    @classmethod
    async def open(cls, conn: asyncssh.SSHClientConnection, *, wait: float, owner: str, first: Sh
                   ) -> tuple[LockSession, Answer]:
        """Take the lock and run `first` under it, in one round trip. LockBusy when another controller keeps it."""
        try:
            process = await conn.create_process(lock_command(wait, owner).text, encoding=None)
            process.stdin.write(framed(first))
            line = await process.stdout.readline()
        except asyncio.IncompleteReadError:
            raise Unreachable("connection lost while taking the host lock") from None
        except asyncssh.ChannelOpenError as exc:
            raise Unreachable(session_refused(exc)) from None
        except (OSError, asyncssh.Error) as exc:
            raise Unreachable(f"connection lost: {exc}") from None
        if line.strip() != b"locked":
            finished = await process.wait()
            holder = shown(_bytes(finished.stderr).decode("utf-8", "replace").strip(), line=True)
            if finished.exit_status == LOCK_BUSY:
                raise LockBusy(f"host is locked by another controller ({holder or 'unknown holder'}); "
                               f"waited {wait:g}s")
            raise Unreachable(f"could not take the host lock (exit {finished.exit_status}): {holder[-300:]}")
        session = cls(process)
        return session, await session._answer()

    async def run(self, script_: Sh) -> Answer:
        if self._process is None:
            return Answer(None, b"", "", "the lock session ended")
        try:
            self._process.stdin.write(framed(script_))
        except (OSError, asyncssh.Error) as exc:
            self._process = None
            raise Unreachable(f"connection lost: {exc}") from None
        return await self._answer()

    async def _answer(self) -> Answer:
        assert self._process is not None
        try:
            header = await self._process.stdout.readuntil(b"\n")
            status, out, err = answer_header(header)
            body = await self._process.stdout.readexactly(out + err)
        except asyncio.IncompleteReadError:
            self._process = None
            return Answer(None, b"", "", "the lock session ended")
        except BadAnswer:
            self._process = None
            raise
        except (OSError, asyncssh.Error) as exc:
            self._process = None
            raise Unreachable(f"connection lost: {exc}") from None
        return Answer(status, body[:out], body[out:].decode("utf-8", "replace"))

    async def close(self, marker: Mapping[str, str]) -> None:
        """End the scripts, write the marker, release the lock (the kernel releases it anyway when the shell goes)."""
        process, self._process = self._process, None
        if process is None:
            return
        try:
            process.stdin.write(b"0\n" + marker_lines(marker))
            process.stdin.write_eof()
            await asyncio.wait_for(process.wait(), 10)
        except (OSError, asyncssh.Error, TimeoutError):
            pass  # the lock goes with the connection anyway


def _bytes(data: bytes | str | None) -> bytes:
    return data.encode() if isinstance(data, str) else (data or b"")


def framed(script_: Sh) -> bytes:
    """The script as the lock session reads it: its size in bytes on one line, then the script and its end line."""
    text = whole(script_)
    return str(len(text)).encode() + b"\n" + text
