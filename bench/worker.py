"""A load-generator process: many clients on one asyncio loop, driven over a Pipe.

The coordinator (``bench.fleet``) spawns several of these, so the generator is not one
Python thread. Each worker connects its clients when told, then tracks, for every game
state version above a base, how many of its clients have seen it (a client that jumps
from version 5 to 7 has seen 6 too: it is up to date) and when the last of them did,
on ``time.monotonic()``, which is the same clock in every process. The driver worker also
holds the two players (``bench.players``) and the subscription microbenchmark's publisher.

Requests are ``(op, args)`` tuples; every request gets one ``(op, result)`` answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any, Literal

from bench.clients import (
    Endpoint,
    GameClient,
    Identity,
    Subscriptions,
    View,
    keep_alive,
    open_client,
)
from bench.players import Players
from bench.serving import Handler, serve_requests

__all__ = ["ClientSpec", "Role", "WorkerSpec", "worker_main"]

Role = Literal["player", "spectator", "idle", "sink", "publisher"]


@dataclass(frozen=True, slots=True)
class ClientSpec:
    identity: Identity
    role: Role


@dataclass(frozen=True, slots=True)
class WorkerSpec:
    name: str
    endpoint: Endpoint
    clients: tuple[ClientSpec, ...]
    spectator_qos: int = 0
    sink_topics: tuple[str, ...] = field(default_factory=tuple)
    connect_concurrency: int = 16


def worker_main(spec: WorkerSpec, conn: Connection) -> None:
    """The process entry point (multiprocessing, spawn)."""
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(Worker(spec, conn).run())


class Worker:
    def __init__(self, spec: WorkerSpec, conn: Connection) -> None:
        self.spec = spec
        self.conn = conn
        n = len(spec.clients)
        self.clients: list[GameClient | None] = [None] * n
        self.last = [-1] * n
        self.tracked = [c.role in ("player", "spectator") for c in spec.clients]
        self.base: int | None = None
        self.count: dict[int, int] = {}
        self.tmax: dict[int, float] = {}
        self.gaps = 0
        self.sink_received = 0
        self.sink_event = asyncio.Event()
        self.behind: set[int] = set()
        self.behind_version = 0
        self.caught_up = asyncio.Event()
        self.players = Players(spec.endpoint.kind)

    # --- plumbing ------------------------------------------------------------------------
    async def run(self) -> None:
        handlers: dict[str, Handler] = {
            "connect": self._connect,
            "track": self._track,
            "wait": self._wait,
            "collect": self._collect,
            "setup": self._setup,
            "storm": self._storm,
            "publish": self._publish,
            "sink_count": self._sink_count,
            "close": self._close,
        }
        await serve_requests(self.conn, self.spec.name, handlers, self._keepalive)

    def _keepalive(self) -> None:
        keep_alive(self.clients)

    # --- connecting ----------------------------------------------------------------------
    async def _connect(self) -> dict[str, Any]:
        gate = asyncio.Semaphore(self.spec.connect_concurrency)
        errors: list[str] = []
        t0 = time.monotonic()

        async def one(index: int, spec: ClientSpec) -> None:
            async with gate:
                try:
                    self.clients[index] = await self._open(index, spec)
                except Exception as exc:  # noqa: BLE001 - counted and reported
                    errors.append(f"{spec.identity.client_id}: {type(exc).__name__}: {exc}")

        await asyncio.gather(*(one(i, c) for i, c in enumerate(self.spec.clients)))
        return {
            "connected": sum(c is not None for c in self.clients),
            "failed": len(errors),
            "errors": errors[:5],
            "t0": t0,
            "t1": time.monotonic(),
        }

    async def _open(self, index: int, spec: ClientSpec) -> GameClient:
        role, ep = spec.role, self.spec.endpoint
        if role == "player":
            seat = self.players.add_seat()
            subs = Subscriptions(state=True, state_qos=1, reply=True)
            client = await open_client(
                ep,
                spec.identity,
                subs,
                full=True,
                on_state=lambda v, view: self._player_state(index, seat, v, view),
                on_other=lambda _t, payload: self.players.on_reply(payload),
            )
            self.players.attach(seat, client)
            return client
        if role == "spectator":
            subs = Subscriptions(state=True, state_qos=self.spec.spectator_qos, reply=True)
            return await open_client(
                ep, spec.identity, subs, full=False, on_state=self._state_for(index)
            )
        if role == "sink":
            subs = Subscriptions(state=False, reply=True, extra=self.spec.sink_topics)
            return await open_client(
                ep, spec.identity, subs, full=False, on_state=_ignore, on_other=self._sink
            )
        # idle phones and the publisher: their own reply topic only (Socket.IO: no choice,
        # every broadcast reaches them)
        subs = Subscriptions(state=False, reply=True)
        return await open_client(ep, spec.identity, subs, full=False, on_state=_ignore)

    # --- version tracking (the hot path) -------------------------------------------------
    def _state_for(self, index: int) -> Callable[[int, View | None], None]:
        def on_state(version: int, _view: View | None) -> None:
            self._seen(index, version)

        return on_state

    def _player_state(self, index: int, seat: int, version: int, view: View | None) -> None:
        now = self._seen(index, version)
        if view is not None:
            self.players.on_state(seat, view, now)

    def _seen(self, index: int, version: int) -> float:
        now = time.monotonic()
        last = self.last[index]
        if version <= last:
            return now
        self.last[index] = version
        base = self.base
        if base is not None:
            low = max(last, base) + 1
            if last >= base and version > low:
                self.gaps += version - low
            count, tmax = self.count, self.tmax
            for v in range(low, version + 1):
                count[v] = count.get(v, 0) + 1
                tmax[v] = now
        if self.behind and version >= self.behind_version:
            self.behind.discard(index)
            if not self.behind:
                self.caught_up.set()
        return now

    def _sink(self, _topic: str, _payload: bytes) -> None:
        self.sink_received += 1
        self.sink_event.set()

    # --- requests ------------------------------------------------------------------------
    async def _track(self, base: int) -> dict[str, Any]:
        self.base = base
        self.count, self.tmax, self.gaps = {}, {}, 0
        return {"tracked": sum(self.tracked)}

    async def _wait(self, version: int, within: float) -> dict[str, Any]:
        self.behind_version = version
        self.behind = {
            i
            for i, tracked in enumerate(self.tracked)
            if tracked and self.clients[i] is not None and self.last[i] < version
        }
        self.caught_up.clear()
        if self.behind:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.caught_up.wait(), within)
        behind = len(self.behind)
        self.behind = set()
        return {"behind": behind, "at": time.monotonic()}

    async def _collect(self) -> dict[str, Any]:
        result = {"count": self.count, "tmax": self.tmax, "gaps": self.gaps}
        self.base = None
        self.count, self.tmax, self.gaps = {}, {}, 0
        return result

    async def _setup(self, max_rounds: int) -> dict[str, Any]:
        return await self.players.setup(max_rounds)

    async def _storm(
        self, max_commands: int, max_seconds: float, interval: float
    ) -> dict[str, Any]:
        return await self.players.storm(max_commands, max_seconds, interval)

    async def _publish(
        self, topic: str, count: int, seconds: float, batch: int, within: float
    ) -> dict[str, Any]:
        """Publish QoS 0 messages in batches, each batch waiting until this worker's sinks
        have it all (so the broker's queues stay short): at least ``count`` messages and
        for at least ``seconds`` (CPU clocks tick at 10 ms), at most for ``within``."""
        roles = [(c, s.role) for c, s in zip(self.clients, self.spec.clients, strict=True)]
        publisher = next(c for c, role in roles if role == "publisher" and c is not None)
        sinks = sum(1 for c, role in roles if role == "sink" and c is not None)
        start_received = self.sink_received
        payload = b'{"bench":"' + b"x" * 64 + b'"}'
        t0 = time.monotonic()
        deadline = t0 + within
        sent = 0
        while (sent < count or time.monotonic() - t0 < seconds) and time.monotonic() < deadline:
            for _ in range(batch):
                publisher.publish(topic, payload)
            sent += batch
            want = start_received + sent * sinks
            while self.sink_received < want and time.monotonic() < deadline:
                self.sink_event.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.sink_event.wait(), 1.0)
        return {
            "sent": sent,
            "received": self.sink_received - start_received,
            "sinks": sinks,
            "t0": t0,
            "t1": time.monotonic(),
        }

    async def _sink_count(self) -> dict[str, Any]:
        return {"received": self.sink_received}

    async def _close(self) -> dict[str, Any]:
        t0 = time.monotonic()
        gate = asyncio.Semaphore(64)

        async def one(client: GameClient) -> None:
            async with gate:
                with contextlib.suppress(Exception):
                    await client.close()

        await asyncio.gather(*(one(c) for c in self.clients if c is not None))
        self.clients = [None] * len(self.clients)
        return {"t0": t0, "t1": time.monotonic()}


def _ignore(_version: int, _view: View | None) -> None:
    return None
