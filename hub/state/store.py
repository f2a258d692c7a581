"""The journal on disk: SQLite, append-only, one durable transaction per batch.

Tables: ``journal`` (every accepted command with its event, actor and time),
``snapshots`` (the full GameState every SNAPSHOT_EVERY versions, and at shutdown),
``meta`` (the service's epoch). WAL with synchronous=FULL: when ``append`` returns,
the entries survive a kill -9 or a power cut. Not thread-safe: one caller at a time.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Self

from pydantic import TypeAdapter, ValidationError

from hub.protocol import Command, Event
from hub.state.errors import JournalCorruptError, StorageUnavailableError
from hub.state.model import Actor, GameState, Role

__all__ = ["SNAPSHOT_EVERY", "JournalEntry", "Store"]

SNAPSHOT_EVERY = 100
_COMMAND = TypeAdapter[Command](Command)
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
"""


@dataclass(frozen=True, slots=True)
class JournalEntry:
    """One accepted command: enough to replay it exactly."""

    game: str
    version: int
    epoch: int
    at: datetime
    actor: Actor
    command: Command
    event: Event


class Store:
    """The journal of every game under one data directory."""

    FILENAME = "journal.sqlite3"

    def __init__(self, data_dir: Path, *, read_only: bool = False) -> None:
        self.path = data_dir / self.FILENAME
        self._read_only = read_only
        self._db: sqlite3.Connection | None = None

    # --- lifecycle ---------------------------------------------------------------------
    def __enter__(self) -> Self:
        try:
            if self._read_only:
                if not self.path.exists():
                    msg = f"no journal at {self.path}"
                    raise StorageUnavailableError(msg)
                uri = f"{self.path.absolute().as_uri()}?mode=ro"  # as_uri escapes # ? %
                db = sqlite3.connect(uri, uri=True, check_same_thread=False)
            else:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
                db.execute("PRAGMA journal_mode=WAL")
                db.execute("PRAGMA synchronous=FULL")
                db.executescript(_SCHEMA)
            db.execute("PRAGMA busy_timeout=5000")
        except (sqlite3.Error, OSError) as exc:
            msg = f"cannot open the journal {self.path}: {exc}"
            raise StorageUnavailableError(msg) from exc
        self._db = db
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

    @property
    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            msg = "the store is not open"
            raise StorageUnavailableError(msg)
        return self._db

    # --- writes -------------------------------------------------------------------------
    def _write(self, statements: Iterable[tuple[str, Sequence[object]]]) -> None:
        db = self._conn
        try:
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

    def append(self, entries: Sequence[JournalEntry], snapshots: Sequence[GameState] = ()) -> None:
        """Commit ``entries`` (and snapshots) in one durable transaction, or nothing."""
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
        self._write(rows)

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
