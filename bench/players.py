"""The two players: seat the game, then play turns as fast as allowed, or at a fixed pace.

Turn storm (``interval == 0``): the player to move sends ``end_turn`` the moment it sees
the state that gives it the turn, so each player has at most one command outstanding and
the next command waits for the new version. A finished game is started again by seat 1
(``start``, 99 rounds), which is a command like any other. Paced (``interval > 0``): one
command per tick; a tick at which the player to move has not yet seen the previous
command's state is counted as late and skipped.

Every command records when it was sent, keyed by the version it will produce; the sender's
latency is the time until the sender itself sees that version.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from typing import TYPE_CHECKING, Any

from bench.clients import Kind, View

if TYPE_CHECKING:
    from bench.clients import GameClient

__all__ = ["Players", "next_command", "read_reply", "rejection_code", "wait_until"]

STORM_ROUNDS = 99
_NO_VIEW = View(version=-1, status="unknown", current_player_id=0)


def next_command(seat: int, view: View, rounds: int) -> dict[str, Any] | None:
    """What the player in ``seat`` sends on ``view``: its turn's ``end_turn``, or (seat 1)
    ``start`` of a finished or new game of ``rounds`` rounds; None if it is not to act."""
    if view.status == "in_progress" and view.current_player_id == seat:
        return {"type": "end_turn", "points": 1}
    if view.status in ("finished", "not_started") and seat == 1:
        return {"type": "start", "max_rounds": rounds}
    return None


def read_reply(payload: bytes) -> dict[str, Any] | None:
    """A reply's JSON body, None if the payload is not JSON."""
    try:
        body: dict[str, Any] = json.loads(payload)
    except ValueError:
        return None
    return body


def rejection_code(body: dict[str, Any]) -> str | None:
    """The error code of a refusal (a hub reply or a Socket.IO ``error``), None if ``body``
    is not one."""
    if body.get("ok") is not False and "code" not in body:
        return None
    error = body.get("error", body)
    return str(error.get("code", "?")) if isinstance(error, dict) else "?"


async def wait_until(check: Any, changed: asyncio.Event, within: float) -> bool:
    """Whether ``check()`` came true within ``within`` s, looked at whenever ``changed``
    is set (and every 0.5 s)."""
    deadline = time.monotonic() + within
    while not check():
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        changed.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(changed.wait(), min(remaining, 0.5))
    return True


class SetupError(Exception):
    """The players could not seat themselves and start the game."""


class Players:
    def __init__(self, kind: Kind) -> None:
        self._kind = kind
        self._clients: dict[int, GameClient] = {}
        self._seats = 0
        self.views: dict[int, View] = {}
        self.changed = asyncio.Event()
        self.running = False
        self.max_commands = 0
        self.commands = 0
        self.acted: set[int] = set()
        self.sent: dict[int, tuple[int, float]] = {}  # version it makes -> (seat, sent at)
        self.latency: dict[int, float] = {}  # version -> sender's latency (s)
        self.rejects: dict[str, int] = {}
        self.last_reject = ""

    # --- wiring --------------------------------------------------------------------------
    def add_seat(self) -> int:
        self._seats += 1
        self.views[self._seats] = _NO_VIEW
        return self._seats

    def attach(self, seat: int, client: GameClient) -> None:
        self._clients[seat] = client

    def on_reply(self, payload: bytes) -> None:
        body = read_reply(payload)
        if body is None:
            return
        code = rejection_code(body)
        if code is not None:
            self.rejects[code] = self.rejects.get(code, 0) + 1
            self.last_reject = json.dumps(body)[:200]

    def on_state(self, seat: int, view: View, now: float) -> None:
        if view.version <= self.views[seat].version:
            return
        self.views[seat] = view
        sent = self.sent.get(view.version)
        if sent is not None and sent[0] == seat:
            self.latency[view.version] = now - sent[1]
        if self.running and self._interval == 0:
            self._act(seat, view)
        self.changed.set()

    # --- acting --------------------------------------------------------------------------
    _interval = 0.0

    def _next_command(self, seat: int, view: View) -> dict[str, Any] | None:
        return next_command(seat, view, STORM_ROUNDS)

    def _act(self, seat: int, view: View) -> bool:
        if view.version in self.acted or self.commands >= self.max_commands:
            return False
        body = self._next_command(seat, view)
        if body is None:
            return False
        if self._kind != "sio":  # the original design has no optimistic concurrency
            body["expected_version"] = view.version
        self.acted.add(view.version)
        self.sent[view.version + 1] = (seat, time.monotonic())
        self.commands += 1
        self._clients[seat].command(body)
        return True

    # --- setup ---------------------------------------------------------------------------
    async def _wait_for(self, check: Any, what: str, within: float = 15.0) -> None:
        if not await wait_until(check, self.changed, within):
            msg = f"players: no {what} in {within} s (views {self.views}, {self.last_reject})"
            raise SetupError(msg)

    def latest(self) -> int:
        return max(v.version for v in self.views.values())

    async def setup(self, max_rounds: int) -> dict[str, Any]:
        """Seat both players (seat 1 first) and start a game; returns the version."""
        await self._wait_for(lambda: all(v.version >= 0 for v in self.views.values()), "state")
        for seat in sorted(self._clients):
            before = self.latest()
            self._clients[seat].command({"type": "join", "name": f"Bench{seat}"})
            await self._wait_for(lambda b=before: self.latest() > b, f"join of seat {seat}")
        await self._wait_for(
            lambda: all(v.version == self.latest() for v in self.views.values()), "agreement"
        )
        self._clients[1].command({"type": "start", "max_rounds": max_rounds})
        await self._wait_for(
            lambda: all(v.status == "in_progress" for v in self.views.values()), "start"
        )
        return {"version": self.latest()}

    # --- the storm -----------------------------------------------------------------------
    async def storm(self, max_commands: int, max_seconds: float, interval: float) -> dict[str, Any]:
        self.sent, self.latency, self.acted, self.rejects = {}, {}, set(), {}
        self.commands, self.max_commands = 0, max_commands
        self._interval = interval
        start_version = self.latest()
        t0 = time.monotonic()
        deadline = t0 + max_seconds
        late_ticks = 0
        self.running = True
        try:
            if interval == 0:
                for seat, view in self.views.items():
                    self._act(seat, view)
                while self.commands < max_commands and time.monotonic() < deadline:
                    self.changed.clear()
                    with contextlib.suppress(TimeoutError, SetupError):
                        await asyncio.wait_for(self.changed.wait(), 0.2)
            else:
                late_ticks = await self._paced(max_commands, deadline, interval)
        finally:
            self.running = False
        last = max(self.sent, default=start_version)
        sender = self.sent[last][0] if last in self.sent else 1
        with contextlib.suppress(TimeoutError, SetupError):
            await self._wait_for(lambda: self.views[sender].version >= last, "last state", 10.0)
        return {
            "start_version": start_version,
            "end_version": self.latest(),
            "commands": self.commands,
            "sent": {v: t for v, (_s, t) in self.sent.items()},
            "latency": self.latency,
            "rejects": self.rejects,
            "last_reject": self.last_reject,
            "late_ticks": late_ticks,
            "t0": t0,
            "t1": time.monotonic(),
        }

    async def _paced(self, max_commands: int, deadline: float, interval: float) -> int:
        late = 0
        tick = time.monotonic()
        while self.commands < max_commands:
            tick += interval
            if tick > deadline:
                break
            await asyncio.sleep(max(0.0, tick - time.monotonic()))
            expected = max(self.sent, default=self.latest())
            movers = [
                s
                for s, v in self.views.items()
                if v.version >= expected and self._next_command(s, v) is not None
            ]
            if not movers or not self._act(movers[0], self.views[movers[0]]):
                late += 1
        return late
