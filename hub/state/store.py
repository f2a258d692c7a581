"""The journal on disk: SQLite, append-only, one durable transaction per batch.

Tables: ``journal`` (every accepted command with its event, actor and time),
``snapshots`` (the full GameState every SNAPSHOT_EVERY versions, and at shutdown),
``meta`` (the service's epoch), ``replies`` (the dedupe window: the last DEDUPE_WINDOW
replies per client, trimmed in the transaction that adds to it). WAL with
synchronous=FULL: when ``append`` returns, the entries survive a kill -9 or a power cut.
An append of replies alone (rejections) commits with synchronous=NORMAL: no fsync, it
survives a kill -9 but maybe not a power cut; the next FULL commit syncs it along.
Not thread-safe: one caller at a time. ``SqliteJournal`` puts it behind the ``Journal``
interface (``hub.state.journal``), on a thread of its own.

A crash can leave the WAL ending in a torn write. SQLite drops everything after the last
intact transaction when it opens the journal, silently; ``wal_tail`` tells beforehand what
that will be, so the hub logs the torn tail it drops, and refuses to start when damage
would take intact transactions after it with it (only a lost write can do that).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import queue
import sqlite3
import struct
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar

from pydantic import TypeAdapter, ValidationError

from hub.protocol import Event, Reply
from hub.state.errors import JournalCorruptError, StorageUnavailableError
from hub.state.journal import DEDUPE_WINDOW, SNAPSHOT_EVERY, JournalEntry, Remembered
from hub.state.model import Actor, GameState, Role, StateCommand

__all__ = ["SNAPSHOT_EVERY", "JournalEntry", "SqliteJournal", "Store", "WalTail", "wal_tail"]

_LOGGER = logging.getLogger(__name__)
_COMMAND = TypeAdapter[StateCommand](StateCommand)
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS journal (
    game TEXT NOT NULL, version INTEGER NOT NULL, epoch INTEGER NOT NULL,
    at TEXT NOT NULL, client_id TEXT NOT NULL, role TEXT NOT NULL,
    command TEXT NOT NULL, event TEXT NOT NULL,
    PRIMARY KEY (game, version)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS snapshots (
    game TEXT NOT NULL, version INTEGER NOT NULL, state TEXT NOT NULL,
    PRIMARY KEY (game, version)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS replies (
    client_id TEXT NOT NULL, seq INTEGER NOT NULL, request_id TEXT NOT NULL,
    reply TEXT NOT NULL,
    PRIMARY KEY (client_id, seq)
) WITHOUT ROWID;
"""
_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class WalTail:
    """What SQLite drops from the end of a WAL file when it opens the database."""

    frames: int
    """Frames (the last maybe partly written) of the WAL's current generation after its
    last intact transaction."""
    size: int
    """Bytes those frames take, with a partly written frame at the very end."""
    lost_transactions: int
    """Intact, complete transactions after the damage, dropped with it (0 for a torn tail)."""
    readable: bool = True
    """False when the WAL header itself is damaged: SQLite then ignores the whole file."""


_WAL_MAGIC = (0x377F0682, 0x377F0683)  # the low bit: checksums over big-endian words
_WAL_HEADER = 32
_FRAME_HEADER = 24
_MASK = 0xFFFFFFFF


def _wal_checksum(data: bytes, seed: tuple[int, int], *, big_endian: bool) -> tuple[int, int]:
    """SQLite's WAL checksum (walChecksumBytes) of ``data``, continuing from ``seed``."""
    words = struct.unpack(f"{'>' if big_endian else '<'}{len(data) // 4}I", data)
    s1, s2 = seed
    pairs = iter(words)
    for x0, x1 in zip(pairs, pairs, strict=True):
        s1 = (s1 + x0 + s2) & _MASK
        s2 = (s2 + x1 + s1) & _MASK
    return s1, s2


def wal_tail(wal: bytes) -> WalTail | None:
    """What SQLite's recovery will drop from this WAL file's content; None if nothing.

    Pure. Follows SQLite's rules (sqlite.org/fileformat2.html#the_write_ahead_log): frames
    count while their salts match the header's and their cumulative checksums hold;
    everything after the last valid commit frame is dropped. Frames of an older generation
    (other salts), which a reused WAL keeps after the current ones, are not part of it.
    """
    if not wal:
        return None
    if len(wal) < _WAL_HEADER:
        return WalTail(frames=0, size=len(wal), lost_transactions=0, readable=False)
    magic, _version, page_size, _seq, salt1, salt2, c1, c2 = struct.unpack(">8I", wal[:32])
    big_endian = bool(magic & 1)
    header_sum = _wal_checksum(wal[:24], (0, 0), big_endian=big_endian)
    page_size_ok = 512 <= page_size <= 65536 and page_size & (page_size - 1) == 0
    if magic not in _WAL_MAGIC or not page_size_ok or header_sum != (c1, c2):
        return WalTail(frames=0, size=len(wal) - _WAL_HEADER, lost_transactions=0, readable=False)
    frame_size = _FRAME_HEADER + page_size
    offset = last_commit_end = _WAL_HEADER
    running = stored = (c1, c2)
    intact = True
    lost = 0
    while offset + frame_size <= len(wal):
        head = wal[offset : offset + _FRAME_HEADER]
        page_no, commit, frame_salt1, frame_salt2, k1, k2 = struct.unpack(">6I", head)
        if (frame_salt1, frame_salt2) != (salt1, salt2):
            break  # an older generation from here on
        covered = head[:8] + wal[offset + _FRAME_HEADER : offset + frame_size]
        if intact:
            running = _wal_checksum(covered, running, big_endian=big_endian)
            intact = page_no != 0 and running == (k1, k2)
            if intact and commit:
                last_commit_end = offset + frame_size
        elif commit and _wal_checksum(covered, stored, big_endian=big_endian) == (k1, k2):
            lost += 1  # a commit frame written right after its (stored) predecessor
        stored = (k1, k2)
        offset += frame_size
    else:
        offset = len(wal)  # a partly written frame at the end belongs to the tail
    if offset == last_commit_end:
        return None
    size = offset - last_commit_end
    return WalTail(frames=(size + frame_size - 1) // frame_size, size=size, lost_transactions=lost)


class Store:
    """The journal of every game under one data directory."""

    FILENAME = "journal.sqlite3"

    def __init__(
        self, data_dir: Path, *, read_only: bool = False, window: int = DEDUPE_WINDOW
    ) -> None:
        self.path = data_dir / self.FILENAME
        self._read_only = read_only
        self._window = window
        self._db: sqlite3.Connection | None = None
        self._sync = True
        """The connection's ``PRAGMA synchronous`` is FULL (else NORMAL)."""

    # --- lifecycle ---------------------------------------------------------------------
    def __enter__(self) -> Self:
        try:
            if self._read_only:
                if not self.path.exists():
                    msg = f"no journal at {self.path.absolute()}"
                    raise StorageUnavailableError(msg)
                uri = f"{self.path.absolute().as_uri()}?mode=ro"  # as_uri escapes # ? %
                db = sqlite3.connect(uri, uri=True, check_same_thread=False)
            else:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._check_wal()
                db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
                db.execute("PRAGMA journal_mode=WAL")
                db.execute("PRAGMA synchronous=FULL")
                db.executescript(_SCHEMA)
            db.execute("PRAGMA busy_timeout=5000")
        except (sqlite3.Error, OSError) as exc:
            msg = f"cannot open the journal {self.path}: {exc}"
            raise StorageUnavailableError(msg) from exc
        self._db = db
        self._sync = True
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    def _check_wal(self) -> None:
        """Log the torn tail SQLite is about to drop; refuse to lose more than that."""
        wal_path = self.path.with_name(self.path.name + "-wal")
        if not wal_path.exists():
            return
        tail = wal_tail(wal_path.read_bytes())
        if tail is None:
            return
        if tail.lost_transactions:
            msg = (
                f"{wal_path} is damaged before its end: {tail.lost_transactions} intact"
                " transactions after the damage would be lost; refusing to open the journal"
                " (move the file away to start without them)"
            )
            raise JournalCorruptError(msg)
        if not tail.readable:
            _LOGGER.warning(
                "journal: the header of %s is torn; dropping the whole WAL (%d bytes)",
                wal_path,
                tail.size,
            )
            return
        _LOGGER.warning(
            "journal: %s ends in a torn write: dropping %d bytes (%d WAL frames) after the"
            " last complete transaction",
            wal_path,
            tail.size,
            tail.frames,
        )

    @property
    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            msg = "the store is not open"
            raise StorageUnavailableError(msg)
        return self._db

    # --- writes -------------------------------------------------------------------------
    def _write(
        self, statements: Iterable[tuple[str, Sequence[object]]], *, sync: bool = True
    ) -> None:
        db = self._conn
        try:
            if sync != self._sync:  # a statement less per commit when it stays the same
                db.execute(f"PRAGMA synchronous={'FULL' if sync else 'NORMAL'}")
                self._sync = sync
            db.execute("BEGIN IMMEDIATE")
            try:
                for sql, params in statements:
                    db.execute(sql, params)
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:  # SQLite may have rolled back already (disk full)
                    db.execute("ROLLBACK")
                raise
        except (sqlite3.Error, OSError) as exc:
            msg = f"cannot write the journal {self.path}: {exc}"
            raise StorageUnavailableError(msg) from exc

    def next_epoch(self) -> int:
        """Raise the service epoch by one, durably, and return it."""
        epoch = self.epoch() + 1
        self._write([("INSERT OR REPLACE INTO meta VALUES ('epoch', ?)", (str(epoch),))])
        return epoch

    def append(
        self,
        entries: Sequence[JournalEntry],
        snapshots: Sequence[GameState] = (),
        remembered: Sequence[Remembered] = (),
    ) -> None:
        """Commit ``entries``, snapshots and replies in one transaction, or nothing;
        durable (fsync) unless it holds replies only (``Journal.append``)."""
        rows: list[tuple[str, Sequence[object]]] = [
            (
                "INSERT INTO journal VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    e.game,
                    e.version,
                    e.epoch,
                    e.at.isoformat(),
                    e.actor.client_id,
                    e.actor.role.value,
                    e.command.model_dump_json(exclude_none=True),
                    json.dumps(e.event.to_wire(), separators=(",", ":")),
                ),
            )
            for e in entries
        ]
        rows.extend(
            (
                "INSERT OR REPLACE INTO snapshots VALUES (?, ?, ?)",
                (s.game, s.version, s.model_dump_json()),
            )
            for s in snapshots
        )
        # One b-tree keyed by (client, its own sequence): an append touches about one
        # page more than before, and trimming a client's window is a range delete.
        rows.extend(
            (
                "INSERT INTO replies SELECT ?, coalesce(max(seq), 0) + 1, ?, ? FROM replies"
                " WHERE client_id = ?",
                (r.client_id, r.request_id, r.reply.model_dump_json(), r.client_id),
            )
            for r in remembered
        )
        rows.extend(
            (
                "DELETE FROM replies WHERE client_id = ? AND seq <= (SELECT max(seq) FROM"
                " replies WHERE client_id = ?) - ?",
                (client_id, client_id, self._window),
            )
            for client_id in dict.fromkeys(r.client_id for r in remembered)
        )
        self._write(rows, sync=bool(entries or snapshots))

    # --- reads --------------------------------------------------------------------------
    def epoch(self) -> int:
        row = self._conn.execute("SELECT value FROM meta WHERE key = 'epoch'").fetchone()
        return int(row[0]) if row else 0

    def latest_snapshot(self, game: str) -> GameState | None:
        row = self._conn.execute(
            "SELECT state FROM snapshots WHERE game = ? ORDER BY version DESC LIMIT 1", (game,)
        ).fetchone()
        if row is None:
            return None
        try:
            return GameState.model_validate_json(row[0])
        except ValidationError as exc:
            msg = f"snapshot of {game!r} is unreadable: {exc}"
            raise JournalCorruptError(msg) from exc

    def entries(self, game: str, *, after: int = 0, limit: int | None = None) -> list[JournalEntry]:
        """Journal entries of ``game`` with version > ``after``, oldest first."""
        rows = self._conn.execute(
            "SELECT version, epoch, at, client_id, role, command, event FROM journal"
            " WHERE game = ? AND version > ? ORDER BY version LIMIT ?",
            (game, after, -1 if limit is None else limit),
        ).fetchall()
        return [self._entry(game, row) for row in rows]

    def count(self, game: str) -> int:
        row = self._conn.execute("SELECT count(*) FROM journal WHERE game = ?", (game,)).fetchone()
        return int(row[0])

    def remembered(self) -> list[Remembered]:
        """The dedupe window: client by client, each client's oldest first."""
        rows = self._conn.execute(
            "SELECT client_id, request_id, reply FROM replies ORDER BY client_id, seq"
        ).fetchall()
        try:
            return [
                Remembered(str(c), str(r), Reply.model_validate_json(str(reply)))
                for c, r, reply in rows
            ]
        except ValidationError as exc:
            msg = f"a remembered reply is unreadable: {exc}"
            raise JournalCorruptError(msg) from exc

    def games(self) -> list[str]:
        rows = self._conn.execute(
            "SELECT game FROM snapshots UNION SELECT game FROM journal ORDER BY game"
        ).fetchall()
        return [str(r[0]) for r in rows]

    @staticmethod
    def _entry(game: str, row: tuple[object, ...]) -> JournalEntry:
        version, epoch, at, client_id, role, command, event = row
        try:
            return JournalEntry(
                game=game,
                version=int(str(version)),
                epoch=int(str(epoch)),
                at=datetime.fromisoformat(str(at)),
                actor=Actor(client_id=str(client_id), role=Role(str(role))),
                command=_COMMAND.validate_json(str(command)),
                event=Event.model_validate_json(str(event)),
            )
        except (ValueError, ValidationError) as exc:
            msg = f"journal entry {game}/{version} is unreadable: {exc}"
            raise JournalCorruptError(msg) from exc


_Call = tuple[
    asyncio.AbstractEventLoop, asyncio.Future[Any], Callable[..., Any], tuple[object, ...]
]
"""A call for the journal thread: where to settle its result, and what to run."""


class _JournalThread:
    """One thread that runs the store's blocking calls in order, each resolving an asyncio
    future with one ``call_soon_threadsafe``.

    What ``run_in_executor`` on a one-thread ``ThreadPoolExecutor`` did, minus its
    bookkeeping per call (a ``concurrent.futures.Future``, the chaining of the two futures,
    the pool's idle semaphore): the journal call is on every command's path (issue #17).
    """

    def __init__(self) -> None:
        self._calls: queue.SimpleQueue[_Call | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._work, name="journal", daemon=True)
        self._thread.start()

    def run(self, fn: Callable[..., _T], *args: object) -> asyncio.Future[_T]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[_T] = loop.create_future()
        self._calls.put((loop, future, fn, args))
        return future

    def _work(self) -> None:
        while (call := self._calls.get()) is not None:
            loop, future, fn, args = call
            try:
                result, error = fn(*args), None
            except BaseException as exc:  # noqa: BLE001 - handed to the awaiting task
                result, error = None, exc
            with contextlib.suppress(RuntimeError):  # the loop closed: nobody waits
                loop.call_soon_threadsafe(_settle, future, result, error)

    def stop(self, *, wait: bool) -> None:
        """Run what is queued, then end the thread (joined if ``wait``)."""
        self._calls.put(None)
        if wait:
            self._thread.join()


def _settle(future: asyncio.Future[Any], result: object, error: BaseException | None) -> None:
    if future.done():  # the awaiting task was cancelled
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


class SqliteJournal:
    """``async with SqliteJournal(data_dir) as journal:`` the ``Journal`` over a ``Store``,
    whose blocking calls run one at a time on the journal's own thread."""

    def __init__(
        self, data_dir: Path, *, read_only: bool = False, window: int = DEDUPE_WINDOW
    ) -> None:
        self.store = Store(data_dir, read_only=read_only, window=window)
        self._thread: _JournalThread | None = None

    async def __aenter__(self) -> Self:
        self._thread = _JournalThread()
        try:
            await self._run(self.store.__enter__)
        except BaseException:
            self._thread.stop(wait=False)
            self._thread = None
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._thread is None:
            return
        await self._run(self.store.__exit__, None, None, None)
        self._thread.stop(wait=True)
        self._thread = None

    async def _run(self, fn: Callable[..., _T], *args: object) -> _T:
        if self._thread is None:
            msg = "the journal is not open"
            raise StorageUnavailableError(msg)
        return await self._thread.run(fn, *args)

    async def next_epoch(self) -> int:
        return await self._run(self.store.next_epoch)

    async def epoch(self) -> int:
        return await self._run(self.store.epoch)

    async def append(
        self,
        entries: Sequence[JournalEntry],
        snapshots: Sequence[GameState] = (),
        remembered: Sequence[Remembered] = (),
    ) -> None:
        await self._run(self.store.append, entries, snapshots, remembered)

    async def latest_snapshot(self, game: str) -> GameState | None:
        return await self._run(self.store.latest_snapshot, game)

    async def entries(
        self, game: str, *, after: int = 0, limit: int | None = None
    ) -> list[JournalEntry]:
        return await self._run(lambda: self.store.entries(game, after=after, limit=limit))

    async def count(self, game: str) -> int:
        return await self._run(self.store.count, game)

    async def games(self) -> list[str]:
        return await self._run(self.store.games)

    async def remembered(self) -> list[Remembered]:
        return await self._run(self.store.remembered)
