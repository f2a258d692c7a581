"""The floor under the venue's CPU per command: a bare asyncio server that does nothing but
fan a message out to its table, at the venue's human pace (issue #17).

    .venv/bin/python -m bench.broker_profile.floor --tables 50 200 --repeat 3

No MQTT, no JSON, no state: T tables of five TCP clients; one client per table sends a
300-byte message after a seeded random 0.2-2 s, and the server writes it to the table's
five clients (the sender included). ``--fsync`` also appends each message to a file and
``os.fdatasync``-s it on a thread of its own before the fan-out (one thread hand-off and
one durable write per message, as a journal that replies only after the write needs).
``--acks N``: N of the five answer every message with 4 bytes (as QoS 1 subscribers
answer with a PUBACK). Printed: the server's CPU (user+system) per message, measured
over ``--window`` s. What any asyncio server pays per message at this pace, before it does
any work of its own; nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import queue
import random
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import psutil

from bench.targets import free_port

MESSAGE = 300
_HELLO = struct.Struct("!IB")  # table, role (0 sender, 1 receiver, 2 receiver that acks)
_ACK = b"ack!"


class _Syncer(threading.Thread):
    """Appends and fdatasyncs on its own thread; settles an asyncio future per write."""

    def __init__(self, path: Path, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(daemon=True, name="floor-syncer")
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self._loop = loop
        self._jobs: queue.SimpleQueue[tuple[bytes, asyncio.Future[None]]] = queue.SimpleQueue()

    def write(self, data: bytes) -> asyncio.Future[None]:
        done: asyncio.Future[None] = self._loop.create_future()
        self._jobs.put((data, done))
        return done

    def run(self) -> None:
        while True:
            data, done = self._jobs.get()
            os.write(self._fd, data)
            os.fdatasync(self._fd)
            self._loop.call_soon_threadsafe(done.set_result, None)


class _Peer(asyncio.Protocol):
    def __init__(self, hub: _Hub) -> None:
        self.hub = hub
        self.transport: asyncio.Transport | None = None
        self.buf = b""
        self.table = -1
        self.role = -1

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if self.table < 0 and len(self.buf) >= _HELLO.size:
            self.table, self.role = _HELLO.unpack_from(self.buf)
            self.buf = self.buf[_HELLO.size :]
            self.hub.tables.setdefault(self.table, []).append(self)
        while self.role == 0 and len(self.buf) >= MESSAGE:
            message, self.buf = self.buf[:MESSAGE], self.buf[MESSAGE:]
            self.hub.received(self.table, message)
        if self.role != 0:
            self.buf = b""  # acks: read and dropped


class _Hub:
    def __init__(self, syncer: _Syncer | None) -> None:
        self.tables: dict[int, list[_Peer]] = {}
        self.syncer = syncer

    def received(self, table: int, message: bytes) -> None:
        if self.syncer is None:
            self.fan_out(table, message)
            return
        done = self.syncer.write(message)
        done.add_done_callback(lambda _f: self.fan_out(table, message))

    def fan_out(self, table: int, message: bytes) -> None:
        for peer in self.tables.get(table, ()):
            if peer.transport is not None:
                peer.transport.write(message)


async def _serve(port: int, fsync: Path | None) -> None:
    loop = asyncio.get_running_loop()
    syncer = _Syncer(fsync, loop) if fsync is not None else None
    if syncer is not None:
        syncer.start()
    hub = _Hub(syncer)
    server = await loop.create_server(lambda: _Peer(hub), "127.0.0.1", port)
    print("ready", flush=True)
    async with server:
        await server.serve_forever()


class _Client(asyncio.Protocol):
    def __init__(self, on_message: Callable[[], None], acks: bool) -> None:
        self.on_message = on_message
        self.acks = acks
        self.transport: asyncio.Transport | None = None
        self.pending = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.pending += len(data)
        while self.pending >= MESSAGE:
            self.pending -= MESSAGE
            if self.acks and self.transport is not None:
                self.transport.write(_ACK)
            self.on_message()


async def _table(port: int, index: int, acks: int, stop: float, counts: list[int]) -> None:
    loop = asyncio.get_running_loop()
    rng = random.Random(index)  # noqa: S311 - think times
    clients: list[_Client] = []

    def seen() -> None:
        counts[0] += 1

    for role in range(5):
        acking = 1 <= role <= acks
        transport, client = await loop.create_connection(
            partial(_Client, seen, acking), "127.0.0.1", port
        )
        transport.write(_HELLO.pack(index, 0 if role == 0 else 2 if acking else 1))
        clients.append(client)
    await asyncio.sleep(rng.uniform(0, 2))
    sender = clients[0].transport
    assert sender is not None
    while time.monotonic() < stop:
        sender.write(b"m" * MESSAGE)
        counts[1] += 1
        await asyncio.sleep(rng.uniform(0.2, 2.0))
    for client in clients:
        if client.transport is not None:
            client.transport.close()


async def _load(
    port: int, tables: int, acks: int, window: float, pid: int
) -> tuple[float, int, int]:
    """Server CPU seconds, messages sent and deliveries seen in the window."""
    counts = [0, 0]  # deliveries seen, messages sent
    warmup = 3.0
    stop = time.monotonic() + warmup + window + 1.0
    players = [asyncio.create_task(_table(port, i, acks, stop, counts)) for i in range(tables)]
    await asyncio.sleep(warmup)
    server = psutil.Process(pid)
    cpu0, (seen0, sent0) = sum(server.cpu_times()[:2]), counts
    await asyncio.sleep(window)
    cpu1, (seen1, sent1) = sum(server.cpu_times()[:2]), counts
    await asyncio.gather(*players)
    return cpu1 - cpu0, sent1 - sent0, seen1 - seen0


def _one(tables: int, acks: int, fsync: bool, window: float) -> tuple[float, float]:
    """Server CPU ms per message, and deliveries per message (5 when the server fanned
    every message out to its table: a server that lost them would look cheap)."""
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="floor-") as tmp:
        args = [sys.executable, "-m", "bench.broker_profile.floor", "--serve", str(port)]
        if fsync:
            args += ["--journal", str(Path(tmp) / "journal")]
        server = subprocess.Popen(args, stdout=subprocess.PIPE, start_new_session=True)
        try:
            assert server.stdout is not None
            server.stdout.readline()
            cpu, sent, seen = asyncio.run(_load(port, tables, acks, window, server.pid))
        finally:
            server.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                server.wait(10)
            if server.poll() is None:
                server.kill()
                server.wait()
    return 1000 * cpu / max(1, sent), seen / max(1, sent)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tables", type=int, nargs="+", default=[50, 200])
    parser.add_argument("--window", type=float, default=15.0)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--acks", type=int, default=0, choices=range(6))
    parser.add_argument("--fsync", action="store_true")
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--journal", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve is not None:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(_serve(args.serve, args.journal))
        return 0
    for tables in args.tables:
        runs = [_one(tables, args.acks, args.fsync, args.window) for _ in range(args.repeat)]
        values = [cpu for cpu, _ in runs]
        print(
            f"floor T={tables:3} fsync={args.fsync} acks={args.acks}: "
            f"cpu/msg median {statistics.median(values):.3f} ms "
            f"({', '.join(f'{v:.3f}' for v in values)}) "
            f"deliveries/msg {', '.join(f'{d:.2f}' for _, d in runs)}",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
