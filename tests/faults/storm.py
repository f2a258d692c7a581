"""A turn storm: seated players pipelining commands at the hub, each in its own thread.

Each player is a ``TestClient`` (paho: it reconnects and resubscribes by itself). It
publishes without waiting for replies (a few dozen in flight at most), mostly ``end_turn``
(half of them out of turn), with renames, pauses, resumes and restarts mixed in. Every
reply is booked: ``ok: true`` as version -> request id in ``AckBook.acked``, rejections by
code. ``barrier()`` makes each player send one more command and wait for its ``ok``:
afterwards everything the hub received from the players before has been answered.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self

from tests.support.mqtt import TOPICS, TestClient

__all__ = ["AckBook", "StormPlayer", "TurnStorm"]

_MAX_IN_FLIGHT = 24
_COMMANDS: tuple[tuple[str, float], ...] = (
    ("end_turn", 6.0),
    ("rename", 3.0),
    ("pause", 0.3),
    ("resume", 0.6),
    ("start", 0.3),
)


@dataclass
class AckBook:
    """What the players sent and what came back, across every restart of the hub."""

    acked: dict[int, str] = field(default_factory=dict)
    """version -> request id of every ``ok: true`` reply."""
    rejected: Counter[str] = field(default_factory=Counter)
    sent: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def book(self, reply: dict[str, Any]) -> None:
        with self._lock:
            if reply.get("ok") is True:
                self.acked[int(reply["version"])] = str(reply["request_id"])
            else:
                self.rejected[str(reply.get("error", {}).get("code"))] += 1

    def count_sent(self) -> None:
        with self._lock:
            self.sent += 1

    def snapshot(self) -> dict[int, str]:
        with self._lock:
            return dict(self.acked)

    def wait_for_acks(self, more: int, timeout: float = 20.0) -> None:
        """Return once ``more`` commands beyond those acknowledged now are acknowledged."""
        target = len(self.snapshot()) + more
        deadline = time.monotonic() + timeout
        while len(self.snapshot()) < target:
            if time.monotonic() > deadline:
                msg = f"the storm got no {more} more acknowledgements in {timeout} s"
                raise TimeoutError(msg)
            time.sleep(0.01)  # polling the book, which paho's threads fill


class StormPlayer:
    """One seated player's thread: publish, book replies, repeat while running."""

    def __init__(self, client: TestClient, book: AckBook, rng: random.Random) -> None:
        self.client = client
        self.name = client.client_id
        self._book = book
        self._rng = rng
        self._topic = TOPICS.game_command("main", self.name)
        self._reply_topic = TOPICS.client_reply(self.name)
        self._seen = 0
        self._outstanding = 0
        self._counter = 0
        self._harvest_lock = threading.Lock()
        self._state = threading.Condition()
        self._wanted = False  # guarded by _state: should the thread send?
        self._busy = False  # guarded by _state: is it sending right now?
        self._stopped = False
        self._thread = threading.Thread(target=self._main, name=f"storm-{self.name}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def join(self, timeout: float) -> None:
        with self._state:
            self._stopped = True
            self._state.notify_all()
        self._thread.join(timeout)
        assert not self._thread.is_alive(), f"storm player {self.name} did not stop"

    def _request_id(self) -> str:
        self._counter += 1
        return f"{self.name}-{self._counter}"

    def _next_command(self) -> dict[str, Any]:
        kinds, weights = zip(*_COMMANDS, strict=True)
        kind = self._rng.choices(kinds, weights)[0]
        command: dict[str, Any] = {"type": kind, "request_id": self._request_id()}
        if kind == "end_turn":
            command["points"] = self._rng.randint(0, 9)
        elif kind == "rename":
            command["name"] = f"{self.name[:10]} {self._counter}"
        elif kind == "start":
            command["max_rounds"] = 99
        return command

    def harvest(self) -> int:
        """Book the replies received since the last call; how many there were."""
        with self._harvest_lock:
            messages = self.client.messages
            new = messages[self._seen :]
            self._seen += len(new)
            replies = [m for m in new if m.topic == self._reply_topic]
            for message in replies:
                self._book.book(message.json())
            self._outstanding = max(0, self._outstanding - len(replies))
            return len(replies)

    def barrier(self, timeout: float) -> None:
        """Send a rename and wait for its ``ok``; retried, since a reply can be lost while
        the client resubscribes after a reconnect (the command may then run twice)."""
        deadline = time.monotonic() + timeout
        while True:
            command = {
                "type": "rename",
                "name": f"{self.name[:10]} b{self._counter}",
                "request_id": self._request_id(),
            }
            try:
                reply = self.client.send(command, timeout=min(3.0, timeout))
            except (TimeoutError, RuntimeError):
                if time.monotonic() > deadline:
                    raise
                continue
            self._book.count_sent()
            assert reply["ok"] is True, f"{self.name} lost its seat: {reply}"
            self._book.book(reply)
            self.harvest()
            self._outstanding = 0
            return

    def set_running(self, wanted: bool, timeout: float = 30.0) -> None:
        """Start or stop sending; stopping waits until no command is being sent."""
        with self._state:
            self._wanted = wanted
            self._state.notify_all()
            if not wanted and not self._state.wait_for(lambda: not self._busy, timeout):
                msg = f"storm player {self.name} is still sending after {timeout} s"
                raise TimeoutError(msg)

    def _main(self) -> None:
        while True:
            with self._state:
                self._busy = False
                self._state.notify_all()
                self._state.wait_for(lambda: self._wanted or self._stopped)
                if self._stopped:
                    return
                self._busy = True
            self._send_one()

    def _send_one(self) -> None:
        try:
            self.client.publish(self._topic, json.dumps(self._next_command()).encode())
        except RuntimeError:  # not reconnected within 10 s: the next round tries again
            return
        self._book.count_sent()
        self._outstanding += 1
        self.harvest()
        if self._outstanding > _MAX_IN_FLIGHT:
            mark = self._seen
            try:
                self.client.wait_for(lambda m: m.topic == self._reply_topic, 0.05, after=mark)
            except TimeoutError:
                self._outstanding -= 1  # lost to a dead hub: do not wait for it forever


class TurnStorm:
    """``with TurnStorm(clients, book, seed) as storm:`` -> ``resume()``, ``pause()``..."""

    def __init__(self, clients: list[TestClient], book: AckBook, seed: int) -> None:
        self.book = book
        self.players = [
            StormPlayer(client, book, random.Random(seed + i)) for i, client in enumerate(clients)
        ]

    def resume(self) -> None:
        for player in self.players:
            player.set_running(True)

    def pause(self, timeout: float = 30.0) -> None:
        """Stop sending and wait until no player is in the middle of a command."""
        for player in self.players:
            player.set_running(False, timeout)

    def barrier(self, timeout: float = 30.0) -> None:
        for player in self.players:
            player.barrier(timeout)

    def __enter__(self) -> Self:
        for player in self.players:
            player.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for player in self.players:
            player.join(20.0)
