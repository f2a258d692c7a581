"""The journal contract (``hub.state.journal.Journal``), run against every implementation.

Each implementation is a factory ``open_journal(read_only=False)`` giving an async
context manager over the same place: SQLite in a temporary directory, and a JetStream
stream (its own per test) on one real nats-server started for the module. Implementation
details (SQLite files, WAL, disk full) are tested in test_store.py, the JetStream
journal's fencing and replication in tests/nats/test_journal.py.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any, Protocol

import pytest

from hub.protocol import ErrorCode, Reply
from hub.state.errors import StorageUnavailableError
from hub.state.journal import DEDUPE_WINDOW, Journal, Remembered
from hub.state.recovery import replay
from hub.state.store import SqliteJournal
from tests.state.test_store import SCRIPT, play
from tests.support.nats import NatsCluster, nats_server


class OpenJournal(Protocol):
    def __call__(
        self, *, read_only: bool = False, window: int = DEDUPE_WINDOW
    ) -> AbstractAsyncContextManager[Journal]: ...


def _sqlite(tmp_path: Path) -> OpenJournal:
    def open_journal(
        *, read_only: bool = False, window: int = DEDUPE_WINDOW
    ) -> AbstractAsyncContextManager[Journal]:
        return SqliteJournal(tmp_path / "data", read_only=read_only, window=window)

    return open_journal


@pytest.fixture(scope="module")
def nats_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsCluster]:
    if nats_server() is None:
        pytest.skip("nats-server is missing: make setup installs it")
    with NatsCluster(tmp_path_factory.mktemp("nats"), nodes=1) as cluster:
        yield cluster


def _jetstream(cluster: NatsCluster) -> OpenJournal:
    from hub.nats.journal import cluster_journal  # noqa: PLC0415 - nats-py only here
    from hub.protocol.broker_url import parse_broker_url  # noqa: PLC0415

    url = parse_broker_url(cluster.url)
    stream = f"T{uuid.uuid4().hex}"

    def open_journal(
        *, read_only: bool = False, window: int = DEDUPE_WINDOW
    ) -> AbstractAsyncContextManager[Journal]:
        return cluster_journal(url, read_only=read_only, window=window, stream=stream)

    return open_journal


@pytest.fixture(params=["jetstream", "sqlite"])
def open_journal(request: pytest.FixtureRequest, tmp_path: Path) -> OpenJournal:
    if request.param == "sqlite":
        return _sqlite(tmp_path)
    cluster: NatsCluster = request.getfixturevalue("nats_node")
    return _jetstream(cluster)


def run(test: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(asyncio.wait_for(test(), timeout=60))


def _reply(n: int) -> Reply:
    return Reply.accepted(f"r{n}", n)


async def _raises(call: Awaitable[object]) -> None:
    with pytest.raises(StorageUnavailableError):
        await call


# --- entries, snapshots, epoch ------------------------------------------------------------


def test_empty_journal(open_journal: OpenJournal) -> None:
    async def test() -> None:
        async with open_journal() as journal:
            assert await journal.epoch() == 0
            assert await journal.entries("main") == []
            assert await journal.latest_snapshot("main") is None
            assert await journal.count("main") == 0
            assert await journal.games() == []
            assert await journal.remembered() == []

    run(test)


def test_round_trip(open_journal: OpenJournal) -> None:
    initial, entries, final = play()

    async def test() -> None:
        async with open_journal() as journal:
            assert await journal.next_epoch() == 1
            await journal.append(entries[:3], [initial])
            await journal.append(entries[3:])
            assert await journal.entries("main") == entries
        async with open_journal() as journal:
            assert await journal.epoch() == 1
            assert await journal.entries("main") == entries
            assert await journal.count("main") == len(entries)
            assert await journal.latest_snapshot("main") == initial
            assert await journal.games() == ["main"]
            assert replay(initial, await journal.entries("main")) == final

    run(test)


def test_entries_after_and_limit(open_journal: OpenJournal) -> None:
    _, entries, _ = play()

    async def test() -> None:
        async with open_journal() as journal:
            await journal.append(entries)
            assert await journal.entries("main", after=3) == entries[3:]
            assert await journal.entries("main", after=3, limit=2) == entries[3:5]
            assert await journal.entries("main", limit=1) == entries[:1]
            assert await journal.entries("main", limit=0) == []
            assert await journal.entries("main", after=len(entries)) == []
            assert await journal.entries("other") == []

    run(test)


def test_latest_snapshot_is_the_highest_version(open_journal: OpenJournal) -> None:
    initial, entries, final = play()
    middle = replay(initial, entries[:4])

    async def test() -> None:
        async with open_journal() as journal:
            await journal.append([], [middle])
            await journal.append(entries, [final])
            await journal.append([], [initial])  # written last, but an older version
            assert await journal.latest_snapshot("main") == final
            await journal.append([], [final])  # the same version again replaces it
            assert await journal.latest_snapshot("main") == final

    run(test)


def test_games_are_kept_apart(open_journal: OpenJournal) -> None:
    _, main_entries, _ = play("main")
    side_initial, side_entries, side_final = play("side", SCRIPT[:3])

    async def test() -> None:
        async with open_journal() as journal:
            await journal.append(main_entries + side_entries, [side_initial])
            assert await journal.games() == ["main", "side"]
            assert await journal.entries("side") == side_entries
            assert await journal.count("main") == len(main_entries)
            assert await journal.latest_snapshot("main") is None
            assert replay(side_initial, await journal.entries("side")) == side_final

    run(test)


def test_next_epoch_is_durable_across_reopen(open_journal: OpenJournal) -> None:
    async def test() -> None:
        for expected in (1, 2, 3):
            async with open_journal() as journal:
                assert await journal.epoch() == expected - 1
                assert await journal.next_epoch() == expected
                assert await journal.epoch() == expected
        async with open_journal(read_only=True) as reader:
            assert await reader.epoch() == 3

    run(test)


# --- all or nothing -----------------------------------------------------------------------


def test_duplicate_version_in_a_batch_stores_nothing(open_journal: OpenJournal) -> None:
    initial, entries, final = play()
    kept = Remembered("p1", "r1", _reply(1))

    async def test() -> None:
        async with open_journal() as journal:
            await _raises(journal.append([*entries[:3], entries[1]], [final], [kept]))
            assert await journal.entries("main") == []
            assert await journal.latest_snapshot("main") is None
            assert await journal.remembered() == []  # the replies went with the entries
            await journal.append(entries, [initial], [kept])  # the journal still works
            assert await journal.entries("main") == entries
            assert await journal.remembered() == [kept]

    run(test)


def test_version_already_stored_rejects_the_whole_batch(open_journal: OpenJournal) -> None:
    _, entries, final = play()

    async def test() -> None:
        async with open_journal() as journal:
            await journal.append(entries[:4])
            await _raises(journal.append(entries[4:] + entries[3:4], [final]))
            assert await journal.entries("main") == entries[:4]
            assert await journal.latest_snapshot("main") is None
        async with open_journal() as journal:
            assert await journal.entries("main") == entries[:4]

    run(test)


def test_a_reader_sees_the_writer_and_cannot_write(open_journal: OpenJournal) -> None:
    initial, entries, _ = play()

    async def test() -> None:
        async with open_journal() as writer:
            await writer.next_epoch()
            await writer.append(entries[:2], [initial])
            async with open_journal(read_only=True) as reader:
                assert await reader.entries("main") == entries[:2]
                await writer.append(entries[2:])
                assert await reader.entries("main") == entries
                assert await reader.epoch() == 1

    run(test)


# --- the dedupe window ----------------------------------------------------------------------


def test_remembered_replies_survive_reopen_in_order(open_journal: OpenJournal) -> None:
    _, entries, _ = play()
    rejected = Remembered(
        "p2", "x", Reply.rejected("x", ErrorCode.NOT_YOUR_TURN, "it is not your turn")
    )
    accepted = [Remembered("p1", f"r{n}", _reply(n)) for n in (1, 2)]

    async def test() -> None:
        async with open_journal() as journal:
            await journal.append(entries[:1], (), accepted[:1])
            await journal.append([], (), [rejected])  # replies alone: no entry
            await journal.append(entries[1:2], (), accepted[1:])
        async with open_journal() as journal:
            kept = await journal.remembered()
        assert sorted(kept, key=lambda r: r.client_id) == [*accepted, rejected]

    run(test)


def test_the_window_keeps_the_last_n_per_client(open_journal: OpenJournal) -> None:
    window = 5
    mine = [Remembered("p1", f"r{n}", _reply(n)) for n in range(1, 13)]
    theirs = [Remembered("p2", f"r{n}", _reply(n)) for n in range(1, 3)]

    async def test() -> None:
        async with open_journal(window=window) as journal:
            await journal.append([], (), theirs)
            await journal.append([], (), mine[:3])
            await journal.append([], (), mine[3:4])
            await journal.append([], (), mine[4:])  # more than the window at once
            kept = await journal.remembered()
        assert sorted(kept, key=lambda r: r.client_id) == mine[-window:] + theirs

    run(test)
