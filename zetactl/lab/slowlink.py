"""A slow link in front of one lab node: a TCP proxy that delays every chunk, both ways, and can cap throughput.

This kernel has no traffic-control qdiscs (`tc qdisc add dev lo root netem` fails: "Specified qdisc kind is
unknown"), so the lab shapes traffic in user space. `zetactl lab slow` runs this module as its own process:

    python -m zetactl.lab.slowlink --listen 127.0.10.2:2222 --to 127.0.10.2:22 \\
        --config DIR/nodes/lab-002/slowlink.json --ready DIR/nodes/lab-002/slowlink.ready

For every client it accepts it opens one connection to the node's sshd and relays bytes both ways. Each chunk
read on one side is written to the other side `delay_ms` milliseconds after it was read (latency: chunks are
pipelined, so the delay does not also divide the throughput), and with `rate_kib` no more than that many KiB per
second leave in each direction (paced in small chunks). EOF is passed on after the same delay (half-close); a
reset on either side closes both. The proxy does not look into the bytes: SSH runs end to end through it, so the
client checks the node's own host key.

The config file holds `{"delay_ms": 150, "rate_kib": 64}` (`rate_kib` null: no cap); SIGHUP reloads it (chunks
read afterwards use the new values, open connections stay up). SIGTERM ends the proxy and its connections.
Standard library only.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import socket
import sys
from dataclasses import dataclass
from pathlib import Path

QUEUE_CHUNKS = 256  # chunks in flight per direction before the reader stops reading (TCP backpressure)
MAX_CHUNK = 64 * 1024


@dataclass(frozen=True)
class Shape:
    delay: float  # seconds, added to every chunk in each direction
    rate: float | None  # bytes per second per direction, None: no cap

    @property
    def chunk(self) -> int:
        """Read size: small enough that a capped link sends in steps of about 20 ms."""
        if self.rate is None:
            return MAX_CHUNK
        return max(512, min(MAX_CHUNK, int(self.rate / 50)))


def load_shape(config: Path) -> Shape:
    data = json.loads(config.read_text())
    delay_ms = float(data["delay_ms"])
    rate_kib = data.get("rate_kib")
    if delay_ms < 0 or (rate_kib is not None and float(rate_kib) <= 0):
        raise ValueError(f"{config}: delay_ms must be >= 0 and rate_kib > 0 (or null)")
    return Shape(delay_ms / 1000, None if rate_kib is None else float(rate_kib) * 1024)


def parse_address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r}: give ADDRESS:PORT")
    return host, int(port)


class SlowLink:
    def __init__(self, target: tuple[str, int], config: Path) -> None:
        self.target = target
        self.config = config
        self.shape = load_shape(config)
        self.connections: set[asyncio.Task[None]] = set()

    def reload(self) -> None:
        try:
            self.shape = load_shape(self.config)
            log(f"reloaded: delay {self.shape.delay * 1000:g} ms, rate "
                f"{'none' if self.shape.rate is None else f'{self.shape.rate / 1024:g} KiB/s'}")
        except (OSError, ValueError, KeyError) as exc:
            log(f"reload failed, keeping the old shape: {exc}")

    async def handle(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.connections.add(task)
        try:
            try:
                node_reader, node_writer = await asyncio.open_connection(*self.target)
            except OSError as exc:  # the node is down: the client sees the connection closed
                log(f"connect {self.target[0]}:{self.target[1]}: {exc}")
                return
            for writer in (client_writer, node_writer):
                sock = writer.get_extra_info("socket")
                if sock is not None:
                    with contextlib.suppress(OSError):
                        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            directions = [asyncio.ensure_future(self.direction(client_reader, node_writer)),
                          asyncio.ensure_future(self.direction(node_reader, client_writer))]
            try:
                # both ways to their end, unless one fails (a reset): then both end
                await asyncio.wait(directions, return_when=asyncio.FIRST_EXCEPTION)
            finally:
                for direction in directions:
                    direction.cancel()
                await asyncio.gather(*directions, return_exceptions=True)
                node_writer.close()
        finally:
            client_writer.close()
            self.connections.discard(task)

    async def direction(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """One way: read chunks, stamp each with its due time, write each when due (and paced by the rate)."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue(QUEUE_CHUNKS)

        async def read() -> None:
            while True:
                data = await reader.read(self.shape.chunk)
                await queue.put((loop.time() + self.shape.delay, data))
                if not data:
                    return

        async def write() -> None:
            free_at = 0.0  # when the capped link has sent everything before
            while True:
                due, data = await queue.get()
                rate = self.shape.rate
                start = max(due, free_at) if rate is not None else due
                wait = start - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                if not data:
                    if writer.can_write_eof():
                        writer.write_eof()
                    return
                writer.write(data)
                await writer.drain()
                if rate is not None:
                    free_at = max(start, loop.time() - 0.05) + len(data) / rate

        reading, writing = asyncio.ensure_future(read()), asyncio.ensure_future(write())
        try:
            await asyncio.wait((reading, writing), return_when=asyncio.FIRST_EXCEPTION)
            for task in (reading, writing):
                failure = task.exception() if task.done() and not task.cancelled() else None
                if failure is not None:
                    raise failure
        finally:
            reading.cancel()
            writing.cancel()


def log(message: str) -> None:
    print(f"slowlink[{os.getpid()}]: {message}", file=sys.stderr, flush=True)


async def serve(listen: tuple[str, int], link: SlowLink, ready: Path | None) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    loop.add_signal_handler(signal.SIGHUP, link.reload)
    server = await asyncio.start_server(link.handle, *listen, reuse_address=True)
    log(f"listening on {listen[0]}:{listen[1]}, relaying to {link.target[0]}:{link.target[1]}, delay "
        f"{link.shape.delay * 1000:g} ms, rate {'none' if link.shape.rate is None else link.shape.rate / 1024}")
    if ready is not None:
        tmp = ready.with_name(ready.name + ".tmp")
        tmp.write_text(f"{os.getpid()}\n")
        tmp.replace(ready)
    try:
        await stop.wait()
    finally:
        server.close()
        for task in list(link.connections):
            task.cancel()
        await asyncio.gather(*link.connections, return_exceptions=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m zetactl.lab.slowlink", description=__doc__.split("\n\n")[0])
    parser.add_argument("--listen", type=parse_address, required=True, help="ADDRESS:PORT to accept clients on")
    parser.add_argument("--to", type=parse_address, required=True, help="ADDRESS:PORT of the node's sshd")
    parser.add_argument("--config", type=Path, required=True, help='JSON: {"delay_ms": N, "rate_kib": N|null}')
    parser.add_argument("--ready", type=Path, help="written (the pid) once listening")
    args = parser.parse_args(argv)
    try:
        link = SlowLink(args.to, args.config)
    except (OSError, ValueError, KeyError) as exc:
        log(f"bad config: {exc}")
        return 2
    try:
        asyncio.run(serve(args.listen, link, args.ready))
    except OSError as exc:
        log(f"cannot listen on {args.listen[0]}:{args.listen[1]}: {exc}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
