"""The journal seam: what the service, ``hub history``, ``hub state`` and the bridge's
history API need from a journal, whichever stores it.

Implementations: ``hub.state.store.SqliteJournal`` (the embedded hub's SQLite file) and
``hub.nats.journal.JetStreamJournal`` (a replicated JetStream stream, appends fenced by
the expected last sequence: a stale writer gets ``FencedError``). Every call is a
coroutine, and ``append`` returns only once what it was given is durable (or raises
``StorageUnavailableError`` having stored none of it).

Besides the accepted commands the journal keeps the dedupe window (``Remembered``): the
last ``DEDUPE_WINDOW`` replies per client, so a command resent with the same request id
gets its original reply again, after a restart or a ``kill -9`` too (docs/protocol.md,
"Retries and duplicates").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from hub.protocol import Event, Reply
from hub.state.model import Actor, GameState, StateCommand

__all__ = [
    "DEDUPE_WINDOW",
    "SNAPSHOT_EVERY",
    "Journal",
    "JournalEntry",
    "JournalReader",
    "Remembered",
]

SNAPSHOT_EVERY = 100
"""The service stores a game's full state every this many versions (and at shutdown)."""

DEDUPE_WINDOW = 64
"""How many of its most recent request ids the hub remembers per client (with their
replies); an older one resent is taken as a new command."""


@dataclass(frozen=True, slots=True)
class JournalEntry:
    """One accepted command: enough to replay it exactly."""

    game: str
    version: int
    epoch: int
    at: datetime
    actor: Actor
    command: StateCommand
    event: Event


@dataclass(frozen=True, slots=True)
class Remembered:
    """The reply a client's command got, kept so a resend of it gets the same reply."""

    client_id: str
    request_id: str
    reply: Reply


class JournalReader(Protocol):
    """The read side: what ``hub history``, ``hub state`` and the history API use."""

    async def epoch(self) -> int:
        """The service epoch last taken (0 for a new journal)."""
        ...

    async def latest_snapshot(self, game: str) -> GameState | None:
        """The stored state of ``game`` with the highest version, None if none."""
        ...

    async def entries(
        self, game: str, *, after: int = 0, limit: int | None = None
    ) -> list[JournalEntry]:
        """Entries of ``game`` with version > ``after``, oldest first, at most ``limit``."""
        ...

    async def count(self, game: str) -> int:
        """How many entries ``game`` has."""
        ...

    async def games(self) -> list[str]:
        """Every game with a snapshot or an entry, sorted."""
        ...


class Journal(JournalReader, Protocol):
    """The read side plus what the state service writes."""

    async def next_epoch(self) -> int:
        """Raise the service epoch by one, durably, and return it."""
        ...

    async def append(
        self,
        entries: Sequence[JournalEntry],
        snapshots: Sequence[GameState] = (),
        remembered: Sequence[Remembered] = (),
    ) -> None:
        """Store all of it in one atomic step, or nothing (``StorageUnavailableError``).

        Returns when ``entries`` and ``snapshots`` are durable (they survive a power cut).
        ``remembered`` replies go in the same step, so an accepted command and its dedupe
        record exist together or not at all; an append of replies alone need only survive
        a crash of the process (a rejection changed nothing, so losing its record to a
        power cut lets a resend be judged afresh, never applied twice). The journal keeps
        the last ``DEDUPE_WINDOW`` per client and forgets older ones in the same step.
        """
        ...

    async def remembered(self) -> list[Remembered]:
        """The whole dedupe window (to rebuild it at start), each client's replies oldest
        first; the order between clients is the implementation's."""
        ...
