"""The venue's load-generator process: whole tables (2 players + 3 watchers each) played
at a human pace, each table a game of its own on the one hub.

A board-game café (issue #17): at every table two players and three watchers (a display,
two phones), all subscribed to that table's game. The player to move waits a random
0.2-2 s after the state that gives it the turn (now and then a burst of quick answers,
0-50 ms each, a few in a row), then sends ``end_turn`` with ``expected_version``; seat 1
starts a finished game again. Every table's randomness comes from its own seeded
``random.Random``, so two runs play the same delays, and every table starts at a random
offset, so they do not move in lock-step.

A table's five clients live in one process, so a table's fan-out (the command's publish
to the last of its five clients having the version) is measured on one clock
(``time.monotonic()``, the same in every process anyway). Per command:

- **reply**: MQTT: the reply on the sender's ``R/clients/{id}/reply`` (matched by
  ``request_id``); Socket.IO: the original design has no reply, so it is the state
  broadcast the sender receives (the same as the sender's latency);
- **sender**: the sender sees the state with the version its command made;
- **fan-out**: the last of the table's five clients has that version.

Requests (over the Fleet's pipe) are ``connect``, ``setup``, ``play`` and ``close``;
``venue_figures`` turns the workers' answers into one point of the ``venue`` workload.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from multiprocessing.connection import Connection
from typing import Any

from bench.clients import (
    Endpoint,
    GameClient,
    Identity,
    Subscriptions,
    View,
    keep_alive,
    open_client,
)
from bench.players import next_command, read_reply, rejection_code, wait_until
from bench.procstat import Usage
from bench.serving import Handler, serve_requests
from bench.stats import percentile

__all__ = ["Pace", "TableSpec", "VenueSpec", "venue_figures", "venue_main"]

SEATS = (1, 2)
WATCHERS = 3
"""A display and two phones per table."""
_NO_VIEW = View(version=-1, status="unknown", current_player_id=0)


@dataclass(frozen=True, slots=True)
class Pace:
    """How humans play: think times, bursts, and where each table starts."""

    think_min: float = 0.2
    think_max: float = 2.0
    burst_chance: float = 0.08
    """Chance, at each move outside a burst, that a burst of quick answers begins."""
    burst_moves: tuple[int, int] = (3, 6)
    burst_max: float = 0.05
    start_spread: float = 2.0
    """Each table makes its first move after a random 0..start_spread s."""
    rounds: int = 5
    """Rounds per game: a café game ends and seat 1 starts the next one."""


@dataclass(frozen=True, slots=True)
class TableSpec:
    game: str
    endpoint: Endpoint
    """Where this table's five clients connect (its ``game`` set)."""
    players: tuple[Identity, Identity]
    watchers: tuple[Identity, ...]


@dataclass(frozen=True, slots=True)
class VenueSpec:
    name: str
    tables: tuple[TableSpec, ...]
    spectator_qos: int = 0
    connect_concurrency: int = 12


def venue_main(spec: VenueSpec, conn: Connection) -> None:
    """The process entry point (multiprocessing, spawn)."""
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(VenueWorker(spec, conn).run())


class Table:
    """One game: its five clients, its players' pace, and what its commands did."""

    def __init__(self, spec: TableSpec, index: int) -> None:
        self.spec = spec
        self.index = index
        self.sio = spec.endpoint.kind == "sio"
        self.clients: list[GameClient | None] = [None] * (len(SEATS) + len(spec.watchers))
        self.last = [-1] * len(self.clients)
        self.views: dict[int, View] = dict.fromkeys(SEATS, _NO_VIEW)
        self.changed = asyncio.Event()
        self.rng = random.Random(index)  # noqa: S311 - think times, not secrets
        self.pace = Pace()
        self.running = False
        self.timer: asyncio.TimerHandle | None = None
        self.burst_left = 0
        self.reset(base=0)

    def reset(self, base: int) -> None:
        """Forget the last run's commands; track versions above ``base``."""
        self.base = base
        self.acted: set[int] = set()
        self.sent: dict[int, tuple[int, float, str]] = {}  # version made -> seat, at, rid
        self.by_rid: dict[str, int] = {}  # request id -> version it makes
        self.reply_at: dict[int, float] = {}  # version -> its reply's arrival
        self.sender_at: dict[int, float] = {}  # version -> its sender saw it
        self.count: dict[int, int] = {}
        self.tmax: dict[int, float] = {}
        self.rejects: dict[str, int] = {}
        self.last_reject = ""

    # --- receiving -----------------------------------------------------------------------
    def on_state(self, index: int, version: int, view: View | None) -> None:
        now = time.monotonic()
        last = self.last[index]
        if version <= last:
            return
        self.last[index] = version
        for v in range(max(last, self.base) + 1, version + 1):
            self.count[v] = self.count.get(v, 0) + 1
            self.tmax[v] = now
        if view is None:
            return
        seat = SEATS[index]
        self.views[seat] = view
        made = self.sent.get(view.version)
        if made is not None and made[0] == seat:
            self.sender_at[view.version] = now
            if self.sio:  # no replies in the original design: the sender's broadcast is one
                self.reply_at[view.version] = now
        self.changed.set()
        if self.running:
            self.schedule()

    def on_reply(self, payload: bytes) -> None:
        now = time.monotonic()
        body = read_reply(payload)
        if body is None:
            return
        code = rejection_code(body)
        if code is not None:
            self._rejected(code, body)
            return
        version = self.by_rid.get(str(body.get("request_id")))
        if version is not None:
            self.reply_at.setdefault(version, now)

    def _rejected(self, code: str, body: dict[str, Any]) -> None:
        self.rejects[code] = self.rejects.get(code, 0) + 1
        self.last_reject = json.dumps(body)[:200]
        if self.running:  # think again about the newest state
            self.acted.discard(max(v.version for v in self.views.values()))
            self.schedule()

    # --- acting --------------------------------------------------------------------------
    def _next(self, seat: int, view: View) -> dict[str, Any] | None:
        return next_command(seat, view, self.pace.rounds)

    def _think(self) -> float:
        pace, rng = self.pace, self.rng
        if self.burst_left == 0 and rng.random() < pace.burst_chance:
            self.burst_left = rng.randint(*pace.burst_moves)
        if self.burst_left:
            self.burst_left -= 1
            return rng.uniform(0.0, pace.burst_max)
        return rng.uniform(pace.think_min, pace.think_max)

    def schedule(self, delay: float | None = None) -> None:
        """The player to move (if any) thinks, then moves; one move pending at a time."""
        if self.timer is not None:
            return
        for seat, view in self.views.items():
            if view.version not in self.acted and self._next(seat, view) is not None:
                wait = self._think() if delay is None else delay
                loop = asyncio.get_running_loop()
                self.timer = loop.call_later(wait, self._move, seat, view.version)
                return

    def _move(self, seat: int, version: int) -> None:
        self.timer = None
        view = self.views[seat]
        if not self.running:
            return
        if view.version != version:  # newer news arrived while thinking: think again
            self.schedule()
            return
        body = self._next(seat, view)
        client = self.clients[seat - 1]
        if body is None or client is None or version in self.acted:
            return
        rid = f"{self.spec.game}-{version}"
        if not self.sio:  # the original design has no optimistic concurrency, no request id
            body["expected_version"] = version
            body["request_id"] = rid
        self.acted.add(version)
        self.sent[version + 1] = (seat, time.monotonic(), rid)
        self.by_rid[rid] = version + 1
        client.command(body)

    def start(self) -> None:
        self.running = True
        self.schedule(self.rng.uniform(0.0, self.pace.start_spread))

    def stop(self) -> None:
        self.running = False
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    # --- setup ---------------------------------------------------------------------------
    async def wait_for(self, check: Callable[[], bool], what: str, within: float) -> None:
        if not await wait_until(check, self.changed, within):
            msg = f"table {self.spec.game}: no {what} in {within} s ({self.views}, "
            msg += f"{self.last_reject})"
            raise TimeoutError(msg)

    def latest(self) -> int:
        return max(v.version for v in self.views.values())

    def _past(self, version: int) -> bool:
        return self.latest() > version

    async def setup(self, within: float) -> None:
        """Seat both players (seat 1 first) and start a game, unless already playing."""
        await self.wait_for(
            lambda: all(v.version >= 0 for v in self.views.values()), "state", within
        )
        if all(v.status == "in_progress" for v in self.views.values()):
            return
        for seat in SEATS:
            before = self.latest()
            client = self.clients[seat - 1]
            assert client is not None
            client.command({"type": "join", "name": f"T{self.index}S{seat}"})
            await self.wait_for(partial(self._past, before), f"join of seat {seat}", within)
        await self.wait_for(
            lambda: len({v.version for v in self.views.values()}) == 1, "agreement", within
        )
        first = self.clients[0]
        assert first is not None
        first.command({"type": "start", "max_rounds": self.pace.rounds})
        await self.wait_for(
            lambda: all(v.status == "in_progress" for v in self.views.values()), "start", within
        )

    # --- results -------------------------------------------------------------------------
    def settled(self) -> bool:
        """Every command answered (or rejected) and every client has the newest version."""
        answered = len(self.reply_at) + sum(self.rejects.values())
        newest = max(self.last)
        return answered >= len(self.sent) and all(v >= newest for v in self.last)

    def figures(self, stall: float) -> dict[str, Any]:
        members = len(self.clients)
        reply, sender, fanout = [], [], []
        stalls = 0
        for version, (_seat, at, _rid) in self.sent.items():
            worst = 0.0
            if version in self.reply_at:
                reply.append(self.reply_at[version] - at)
                worst = max(worst, reply[-1])
            if version in self.sender_at:
                sender.append(self.sender_at[version] - at)
                worst = max(worst, sender[-1])
            if self.count.get(version, 0) >= members:
                fanout.append(self.tmax[version] - at)
                worst = max(worst, fanout[-1])
            stalls += worst > stall
        rejected = sum(self.rejects.values())
        applied = sum(1 for v in self.sent if v in self.sender_at)
        return {
            "sent": len(self.sent),
            "replied": len(self.reply_at),
            "applied": applied,
            "rejected": rejected,
            "lost": max(0, len(self.sent) - max(len(self.reply_at), applied) - rejected),
            "incomplete": sum(1 for v in self.sent if self.count.get(v, 0) < members),
            "stalls": stalls,
            "reply": reply,
            "sender": sender,
            "fanout": fanout,
            "rejects": self.rejects,
            "last_reject": self.last_reject,
        }


class VenueWorker:
    def __init__(self, spec: VenueSpec, conn: Connection) -> None:
        self.spec = spec
        self.conn = conn
        self.tables = [Table(t, i) for i, t in enumerate(spec.tables)]

    async def run(self) -> None:
        handlers: dict[str, Handler] = {
            "connect": self._connect,
            "setup": self._setup,
            "play": self._play,
            "close": self._close,
        }
        await serve_requests(self.conn, self.spec.name, handlers, self._keepalive)

    def _keepalive(self) -> None:
        keep_alive(client for table in self.tables for client in table.clients)

    async def _connect(self) -> dict[str, Any]:
        gate = asyncio.Semaphore(self.spec.connect_concurrency)
        errors: list[str] = []
        qos = self.spec.spectator_qos

        async def one(table: Table, index: int, identity: Identity) -> None:
            player = index < len(SEATS)
            subs = Subscriptions(state=True, state_qos=1 if player else qos, reply=True)

            def on_state(version: int, view: View | None) -> None:
                table.on_state(index, version, view)

            async with gate:
                try:
                    table.clients[index] = await open_client(
                        table.spec.endpoint,
                        identity,
                        subs,
                        full=player,
                        on_state=on_state,
                        on_other=(lambda _t, payload: table.on_reply(payload)) if player else None,
                    )
                except Exception as exc:  # noqa: BLE001 - counted and reported
                    errors.append(f"{identity.client_id}: {type(exc).__name__}: {exc}")

        t0 = time.monotonic()
        await asyncio.gather(
            *(
                one(table, index, identity)
                for table in self.tables
                for index, identity in enumerate((*table.spec.players, *table.spec.watchers))
            )
        )
        return {
            "connected": sum(c is not None for t in self.tables for c in t.clients),
            "failed": len(errors),
            "errors": errors[:5],
            "t0": t0,
            "t1": time.monotonic(),
        }

    async def _setup(self, within: float) -> dict[str, Any]:
        gate = asyncio.Semaphore(16)

        async def one(table: Table) -> None:
            async with gate:
                await table.setup(within)

        await asyncio.gather(*(one(t) for t in self.tables))
        return {"tables": len(self.tables)}

    async def _play(self, seconds: float, drain: float, seed: int, stall: float) -> dict[str, Any]:
        """Play for ``seconds``, then wait (at most ``drain`` s) for the last answers; a
        command whose reply or state took over ``stall`` s is a stall."""
        for table in self.tables:
            table.reset(base=max(table.last))
            table.rng = random.Random(f"{seed}/{table.spec.game}")  # noqa: S311 - as above
            table.burst_left = 0
        t0 = time.monotonic()
        for table in self.tables:
            table.start()
        await asyncio.sleep(seconds)
        for table in self.tables:
            table.stop()
        t1 = time.monotonic()
        deadline = t1 + drain
        # a condition over every table, polled (bounded by ``drain``)
        while time.monotonic() < deadline and not all(t.settled() for t in self.tables):  # noqa: ASYNC110
            await asyncio.sleep(0.02)
        parts = [t.figures(stall) for t in self.tables]
        rejects: dict[str, int] = {}
        for part in parts:
            for code, n in part["rejects"].items():
                rejects[code] = rejects.get(code, 0) + n
        summed = {
            key: sum(p[key] for p in parts)
            for key in ("sent", "replied", "applied", "rejected", "lost", "incomplete", "stalls")
        }
        lists = {key: [x for p in parts for x in p[key]] for key in ("reply", "sender", "fanout")}
        return {
            **summed,
            **lists,
            "rejects": rejects,
            "last_reject": next((p["last_reject"] for p in parts if p["last_reject"]), ""),
            "t0": t0,
            "t1": t1,
            "t2": time.monotonic(),
        }

    async def _close(self) -> dict[str, Any]:
        gate = asyncio.Semaphore(64)

        async def one(client: GameClient) -> None:
            async with gate:
                with contextlib.suppress(Exception):
                    await client.close()

        await asyncio.gather(*(one(c) for t in self.tables for c in t.clients if c is not None))
        for table in self.tables:
            table.clients = [None] * len(table.clients)
        return {}


def venue_figures(parts: list[dict[str, Any]], usage: Usage, tables: int) -> dict[str, Any]:
    """One repeat's figures from every worker's ``play`` answer and the CPU window."""
    summed = {
        key: sum(int(p[key]) for p in parts)
        for key in ("sent", "replied", "applied", "rejected", "lost", "incomplete", "stalls")
    }
    rejects: dict[str, int] = {}
    for part in parts:
        for code, n in part["rejects"].items():
            rejects[code] = rejects.get(code, 0) + n
    ms = {key: [x * 1000 for p in parts for x in p[key]] for key in ("reply", "sender", "fanout")}
    play = max(p["t1"] for p in parts) - min(p["t0"] for p in parts)
    commands = summed["replied"]  # accepted: MQTT, the reply; Socket.IO, the sender's state
    wall = usage.wall or math.nan
    return {
        "tables": tables,
        "clients": tables * (len(SEATS) + WATCHERS),
        "commands": commands,
        **summed,
        "rejects": rejects,
        "last_reject": next((p["last_reject"] for p in parts if p["last_reject"]), ""),
        "cmd_per_s": commands / play if play > 0 else math.nan,
        "server_cpu_ms_per_cmd": usage.server_cpu / commands * 1000 if commands else math.nan,
        "reply_p50_ms": percentile(ms["reply"], 50),
        "reply_p99_ms": percentile(ms["reply"], 99),
        "sender_p50_ms": percentile(ms["sender"], 50),
        "sender_p99_ms": percentile(ms["sender"], 99),
        "fanout_p50_ms": percentile(ms["fanout"], 50),
        "fanout_p99_ms": percentile(ms["fanout"], 99),
        "fanout_max_ms": max(ms["fanout"], default=math.nan),
        "server_cores": usage.server_cpu / wall,
        "server_peak_rss_mb": usage.peak_rss / 2**20,
        "generator_cores": usage.generator_cpu / wall,
        "busiest_worker_pct": 100 * usage.busiest_generator / wall,
        "others_cores": usage.others_cpu / wall,
        "play_s": play,
        "window_s": usage.wall,
    }
