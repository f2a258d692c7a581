"""Group commit across tables: commands of several games that arrive while a commit is in
flight go into the next commit together; each is replied to only after that commit
returned, and a failed commit refuses all of them and changes none of their games.

The service runs in-process on the real SQLite journal, whose ``append`` is held at a gate
(and made to fail on demand) by a thin wrapper; the transport is an in-memory stand-in that
records what is published, in order, beside the journal's own "committed" marks.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

from hub.protocol import Topics
from hub.state.errors import StorageUnavailableError
from hub.state.journal import JournalEntry, Remembered
from hub.state.model import GameState, Role
from hub.state.service import ServiceOptions, StateService
from hub.state.store import SqliteJournal
from hub.transport import Inbound, Inbox

GAMES = ("a", "b", "c")
TOPICS = Topics()
WITHIN = 30.0


class Recorder:
    """The transport's side: the inbox we fill, and a log of publishes and commits."""

    def __init__(self) -> None:
        self.inbox = Inbox()
        self.log: list[tuple[str, str, bytes]] = []
        """("publish", topic, payload) and ("commit", games, b"") in the order they happened."""
        self.taken = 0
        """Messages the service took off the inbox."""
        self.changed = asyncio.Event()

    async def until(self, condition: Callable[[], bool]) -> None:
        async with asyncio.timeout(WITHIN):
            while not condition():
                self.changed.clear()
                await self.changed.wait()

    async def subscribe(self, *filters: str) -> None:
        return None

    async def publish(
        self, topic: str, payload: bytes, *, retain: bool = False, qos: int = 1
    ) -> None:
        self.log.append(("publish", topic, payload))
        self.changed.set()

    async def messages(self) -> AsyncIterator[Inbound]:
        async for message in self.inbox.messages():
            self.taken += 1
            self.changed.set()
            yield message

    def on_reconnect(self, callback: Callable[[], Awaitable[None]]) -> None:
        return None

    def replies(self, client_id: str) -> list[dict[str, object]]:
        topic = TOPICS.client_reply(client_id)
        return [json.loads(p) for kind, t, p in self.log if kind == "publish" and t == topic]


class GatedJournal(SqliteJournal):
    """The real journal; each ``append`` with entries waits for ``gate`` and raises if
    ``fail`` is set (nothing stored), and every append is noted in the recorder's log."""

    def __init__(self, data_dir: Path, recorder: Recorder) -> None:
        super().__init__(data_dir)
        self.recorder = recorder
        self.gate = asyncio.Event()
        self.gate.set()
        self.waiting = asyncio.Event()
        self.fail = False
        self.calls: list[list[str]] = []

    async def append(
        self,
        entries: Sequence[JournalEntry],
        snapshots: Sequence[GameState] = (),
        remembered: Sequence[Remembered] = (),
    ) -> None:
        if entries:
            self.waiting.set()
            await self.gate.wait()
            self.calls.append([e.game for e in entries])
            if self.fail:
                msg = "the test's disk is full"
                raise StorageUnavailableError(msg)
        await super().append(entries, snapshots, remembered)
        games = ",".join(sorted({e.game for e in entries}))
        self.recorder.log.append(("commit", games, b""))


def _options() -> ServiceOptions:
    return ServiceOptions(
        topics=TOPICS,
        games=GAMES,
        max_rounds=3,
        max_payload_bytes=4096,
        stats_interval=3600.0,
        version="test",
        epoch=1,
        started_at=datetime(2026, 12, 6, tzinfo=UTC),
        command_rate=0.0,
    )


def _join(recorder: Recorder, game: str, client_id: str, request_id: str) -> None:
    payload = json.dumps({"type": "join", "name": client_id, "request_id": request_id})
    recorder.inbox.put(
        Inbound(TOPICS.game_command(game, client_id), payload.encode(), sender=client_id)
    )


async def _hold_first_commit(recorder: Recorder, journal: GatedJournal) -> None:
    """Game a's join goes into a commit that stays in flight (the gate is shut)."""
    journal.gate.clear()
    journal.waiting.clear()
    _join(recorder, "a", "pa", "a-1")
    async with asyncio.timeout(WITHIN):
        await journal.waiting.wait()
    _join(recorder, "b", "pb", "b-1")
    _join(recorder, "c", "pc", "c-1")
    taken = recorder.taken + 2
    await recorder.until(lambda: recorder.taken == taken)  # queued while a's commit waits


def _versions(service: StateService) -> dict[str, int]:
    views = {game: service.snapshot(game) for game in GAMES}
    return {game: view.version for game, view in views.items() if view is not None}


def test_commands_of_several_games_in_flight_share_one_commit(tmp_path: Path) -> None:
    async def scenario() -> None:
        recorder = Recorder()
        async with GatedJournal(tmp_path, recorder) as journal:
            service = StateService(recorder, journal, _options(), lambda _c: Role.PLAYER)
            async with service:
                await _hold_first_commit(recorder, journal)
                assert recorder.replies("pb") == recorder.replies("pc") == []
                journal.gate.set()
                await recorder.until(
                    lambda: bool(recorder.replies("pc")) and bool(recorder.replies("pb"))
                )
                assert journal.calls[-2:] == [["a"], ["b", "c"]]  # b and c: one commit
                commit = recorder.log.index(("commit", "b,c", b""))
                for client_id, game in (("pb", "b"), ("pc", "c")):
                    reply_topic = TOPICS.client_reply(client_id)
                    at = next(i for i, (_k, t, _p) in enumerate(recorder.log) if t == reply_topic)
                    assert at > commit, f"{client_id} was answered before its commit"
                    assert recorder.replies(client_id) == [
                        {"request_id": f"{game}-1", "ok": True, "version": 1}
                    ]
                assert await journal.count("b") == await journal.count("c") == 1

    asyncio.run(scenario())


def test_a_failed_commit_refuses_every_game_in_it_and_changes_none(tmp_path: Path) -> None:
    async def scenario() -> None:
        recorder = Recorder()
        async with GatedJournal(tmp_path, recorder) as journal:
            service = StateService(recorder, journal, _options(), lambda _c: Role.PLAYER)
            async with service:
                before = _versions(service)
                await _hold_first_commit(recorder, journal)
                journal.fail = True  # a's commit and b+c's both fail
                journal.gate.set()
                await recorder.until(
                    lambda: bool(recorder.replies("pc")) and bool(recorder.replies("pb"))
                )
                assert journal.calls[-2:] == [["a"], ["b", "c"]]
                for client_id, game in (("pa", "a"), ("pb", "b"), ("pc", "c")):
                    (reply,) = recorder.replies(client_id)
                    assert reply["ok"] is False
                    assert reply["request_id"] == f"{game}-1"
                    assert reply["error"]["code"] == "storage_unavailable"  # type: ignore[index]
                    assert await journal.count(game) == 0
                assert _versions(service) == before
                events = [t for kind, t, _p in recorder.log if t.endswith("/events")]
                assert events == []
                # nothing was remembered: the same request ids are judged afresh
                journal.fail = False
                _join(recorder, "b", "pb", "b-1")
                await recorder.until(lambda: len(recorder.replies("pb")) == 2)
                assert recorder.replies("pb")[-1] == {"request_id": "b-1", "ok": True, "version": 1}
                assert await journal.count("b") == 1

    asyncio.run(scenario())
