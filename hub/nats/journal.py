"""The journal as a JetStream stream: ``hub serve --broker`` on a NATS cluster.

``async with JetStreamJournal(servers, user, password) as journal:`` is the ``Journal``
(``hub.state.journal``) over one stream, ``TABLEHUB_JOURNAL`` (file storage, replicated on
``min(3, nodes)`` nodes). Every write is ONE message, published with
``Nats-Expected-Last-Sequence``: an ``append`` (its entries, snapshots and dedupe replies
together: all or nothing, like the SQLite transaction) or a ``next_epoch``. Why one stream
and not a KV bucket for the epoch, snapshots and the dedupe window: a single sequence
orders everything, so one expectation fences every kind of write (a stale writer can
neither extend the history nor raise the epoch nor add a reply), and an append stays one
atomic message; a KV bucket beside it would need a second, unfenced write.

``append`` returns once the stream acknowledged the message (the publish ack comes after
the replicas' quorum stored it). When the expectation fails, another writer (a standby that
took over) extended the stream: ``FencedError``, nothing stored. Any other failure (no
quorum, a timeout) is ``StorageUnavailableError``.

Reading: the journal keeps an index of the stream in memory (games' entries, their newest
snapshot, the epoch, the dedupe window) and catches up with the stream before each read,
so a reader sees what a writer stored. The stream is never trimmed (the history is the
product); a start reads all of it.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Self

from nats.aio.client import Client as NatsClient
from nats.errors import Error as NatsClientError
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, StorageType, StreamConfig
from nats.js.errors import (
    APIError,
    NoStreamResponseError,
    NotFoundError,
    ServiceUnavailableError,
)
from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError

from hub.nats.client import close_quietly, connect, while_electing
from hub.nats.config import read_callout
from hub.nats.errors import NatsError
from hub.protocol import Event, Reply
from hub.protocol.broker_url import BrokerUrl
from hub.state.errors import FencedError, JournalCorruptError, StorageUnavailableError
from hub.state.journal import DEDUPE_WINDOW, JournalEntry, Remembered
from hub.state.model import Actor, GameState, Role, StateCommand

__all__ = ["STREAM", "JetStreamJournal", "cluster_journal"]

_LOGGER = logging.getLogger(__name__)
STREAM = "TABLEHUB_JOURNAL"
_SUBJECT = "tablehub.journal"
_WRONG_LAST_SEQUENCE = 10071
_NO_LEADER = 503
WRITE_PATIENCE = 15.0
"""Seconds an append keeps trying while the stream elects a leader (a node died)."""
"""JetStream's error code for a failed ``Nats-Expected-Last-Sequence``."""
_DIRECT_GETS = 16
"""Catching up this many messages or fewer: one get each; more: a consumer."""
_TIMEOUT = 5.0
_COMMAND = TypeAdapter[StateCommand](StateCommand)


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class _EntryRecord(_Frozen):
    game: str
    version: int
    epoch: int
    at: datetime
    client_id: str
    role: str
    command: str
    event: str


class _ReplyRecord(_Frozen):
    client_id: str
    request_id: str
    reply: str


class _Record(_Frozen):
    """One message of the stream: an epoch taken, or an append."""

    epoch: int | None = None
    entries: tuple[_EntryRecord, ...] = ()
    snapshots: tuple[str, ...] = ()
    remembered: tuple[_ReplyRecord, ...] = ()


def _entry_record(e: JournalEntry) -> _EntryRecord:
    return _EntryRecord(
        game=e.game,
        version=e.version,
        epoch=e.epoch,
        at=e.at,
        client_id=e.actor.client_id,
        role=e.actor.role.value,
        command=e.command.model_dump_json(exclude_none=True),
        event=json.dumps(e.event.to_wire(), separators=(",", ":")),
    )


def _entry(r: _EntryRecord) -> JournalEntry:
    return JournalEntry(
        game=r.game,
        version=r.version,
        epoch=r.epoch,
        at=r.at,
        actor=Actor(client_id=r.client_id, role=Role(r.role)),
        command=_COMMAND.validate_json(r.command),
        event=Event.model_validate_json(r.event),
    )


class _Index:
    """What the stream holds, as of sequence ``seq`` (pure)."""

    def __init__(self, window: int) -> None:
        self.seq = 0
        self.epoch = 0
        self.window = window
        self.entries: dict[str, dict[int, JournalEntry]] = {}
        self.snapshots: dict[str, GameState] = {}
        self.remembered: OrderedDict[tuple[str, str], Remembered] = OrderedDict()

    def check(self, entries: Sequence[JournalEntry]) -> None:
        """Raise StorageUnavailableError if a version is already stored or given twice."""
        seen: set[tuple[str, int]] = set()
        for e in entries:
            key = (e.game, e.version)
            if key in seen or e.version in self.entries.get(e.game, {}):
                msg = f"journal entry {e.game}/{e.version} is already stored; nothing stored"
                raise StorageUnavailableError(msg)
            seen.add(key)

    def apply(self, seq: int, data: bytes) -> None:
        try:
            record = _Record.model_validate_json(data)
            entries = [_entry(r) for r in record.entries]
            snapshots = [GameState.model_validate_json(s) for s in record.snapshots]
            replies = [
                Remembered(r.client_id, r.request_id, Reply.model_validate_json(r.reply))
                for r in record.remembered
            ]
        except (ValueError, ValidationError) as exc:
            msg = f"journal message {seq} of {STREAM} is unreadable: {exc}"
            raise JournalCorruptError(msg) from exc
        self.seq = seq
        if record.epoch is not None:
            self.epoch = record.epoch
        for e in entries:
            self.entries.setdefault(e.game, {})[e.version] = e
        for s in snapshots:
            old = self.snapshots.get(s.game)
            if old is None or s.version >= old.version:
                self.snapshots[s.game] = s
        for r in replies:
            self.remembered.pop((r.client_id, r.request_id), None)
            self.remembered[(r.client_id, r.request_id)] = r
        for client_id in dict.fromkeys(r.client_id for r in replies):
            mine = [key for key in self.remembered if key[0] == client_id]
            for key in mine[: max(0, len(mine) - self.window)]:
                del self.remembered[key]


async def _patiently(call: Callable[[], Awaitable[None]]) -> None:
    """``call()``, again while the stream elects a leader, until ``WRITE_PATIENCE``."""
    await while_electing(
        call, patience=WRITE_PATIENCE, pause=0.25, logger=_LOGGER, what="the journal stream"
    )


class JetStreamJournal:
    """The ``Journal`` on a JetStream stream (see the module docstring)."""

    def __init__(
        self,
        servers: Sequence[str],
        user: str | None,
        password: str | None,
        *,
        replicas: int | None = None,
        read_only: bool = False,
        window: int = DEDUPE_WINDOW,
        stream: str = STREAM,
    ) -> None:
        self._servers = list(servers)
        self._user = user
        self._password = password
        self._replicas = replicas if replicas is not None else min(3, len(self._servers))
        self._read_only = read_only
        self._stream = stream
        self._subject = f"{_SUBJECT}.{stream}"
        self._index = _Index(window)
        self._expected: int | None = None
        """The stream's last sequence as this writer knows it (None: not a writer yet)."""
        self._nc: NatsClient | None = None
        self._js: JetStreamContext | None = None

    # --- lifecycle ---------------------------------------------------------------------
    async def __aenter__(self) -> Self:
        try:
            self._nc = await connect(
                self._servers,
                user=self._user,
                password=self._password,
                name="tablehub-journal",
                logger=_LOGGER,
                what="journal",
                reconnect_wait=0.25,
                connect_timeout=_TIMEOUT,
            )
            self._js = self._nc.jetstream(timeout=_TIMEOUT)
            if not self._read_only:
                await _patiently(self._ensure_stream)
            await self._catch_up()
        except (OSError, NatsClientError) as exc:
            await self._close()
            msg = f"cannot open the journal stream {self._stream}: {exc}"
            raise StorageUnavailableError(msg) from exc
        except BaseException:
            await self._close()
            raise
        if not self._read_only:
            self._expected = self._index.seq
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._close()

    async def _close(self) -> None:
        nc, self._nc, self._js = self._nc, None, None
        await close_quietly(nc)

    @property
    def _jetstream(self) -> JetStreamContext:
        if self._js is None:
            msg = "the journal is not open"
            raise StorageUnavailableError(msg)
        return self._js

    async def _ensure_stream(self) -> None:
        config = StreamConfig(
            name=self._stream,
            subjects=[self._subject],
            storage=StorageType.FILE,
            num_replicas=self._replicas,
            max_msgs_per_subject=-1,
        )
        try:
            await self._jetstream.stream_info(self._stream)
        except NotFoundError:
            await self._jetstream.add_stream(config)
            _LOGGER.info("created the stream %s (%d replicas)", self._stream, self._replicas)

    # --- reading the stream ---------------------------------------------------------------
    async def _catch_up(self) -> None:
        """Apply every message after the index's sequence, up to the stream's last (asked
        again while the stream elects a leader, up to ``WRITE_PATIENCE``)."""
        await _patiently(self._catch_up_once)

    async def _catch_up_once(self) -> None:
        js = self._jetstream
        try:
            try:
                info = await js.stream_info(self._stream)
            except NotFoundError:
                return  # nothing written yet (a reader before any writer)
            last = info.state.last_seq
            if last - self._index.seq <= _DIRECT_GETS:
                for seq in range(self._index.seq + 1, last + 1):
                    raw = await js.get_msg(self._stream, seq)
                    self._index.apply(seq, raw.data or b"")
                return
            await self._consume(js, last)
        except (OSError, NatsClientError) as exc:
            msg = f"cannot read the journal stream {self._stream}: {exc}"
            raise StorageUnavailableError(msg) from exc

    async def _consume(self, js: JetStreamContext, last: int) -> None:
        config = ConsumerConfig(
            deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
            opt_start_seq=self._index.seq + 1,
            ack_policy=AckPolicy.NONE,
            inactive_threshold=30.0,
            mem_storage=True,
            num_replicas=1,
        )
        sub = await js.pull_subscribe(self._subject, stream=self._stream, config=config)
        try:
            while self._index.seq < last:
                for msg in await sub.fetch(256, timeout=_TIMEOUT):
                    self._index.apply(msg.metadata.sequence.stream, msg.data)
        finally:
            await sub.unsubscribe()

    # --- writes -------------------------------------------------------------------------
    async def _publish(self, record: _Record) -> None:
        if self._read_only or self._expected is None:
            msg = "the journal is open read-only"
            raise StorageUnavailableError(msg)
        data = record.model_dump_json(exclude_defaults=True).encode()
        seq = await self._store_at(self._expected + 1, data)
        self._index.apply(seq, data)
        self._expected = seq

    async def _store_at(self, seq: int, data: bytes) -> int:
        """Publish ``data`` as the stream's message ``seq`` (fenced by the expected last
        sequence) and return ``seq`` once the stream acknowledged it.

        While a node dies the stream has no leader for a few seconds (JetStream's election
        timeout is 4-9 s): its API answers 503 or nothing. The same message, with the same
        expected sequence, is then sent again for up to ``WRITE_PATIENCE`` s. A send whose
        ack was lost may have been stored: a resend then finds the sequence taken, and is
        ours if the message stored there is this one (never written twice)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + WRITE_PATIENCE
        headers = {"Nats-Expected-Last-Sequence": str(seq - 1)}
        resent = False
        while True:
            try:
                ack = await self._jetstream.publish(
                    self._subject, data, stream=self._stream, headers=headers
                )
            except APIError as exc:
                if exc.err_code == _WRONG_LAST_SEQUENCE:
                    if resent and await self._holds(seq, data):
                        return seq
                    msg = (
                        f"the journal stream {self._stream} was extended by another writer"
                        f" (expected last sequence {seq - 1}): this one is fenced off"
                    )
                    raise FencedError(msg) from exc
                transient = isinstance(exc, ServiceUnavailableError) or exc.code == _NO_LEADER
                if not transient or loop.time() >= deadline:
                    msg = f"cannot write the journal stream {self._stream}: {exc}"
                    raise StorageUnavailableError(msg) from exc
            except (NatsTimeoutError, NoRespondersError, NoStreamResponseError) as exc:
                if loop.time() >= deadline:
                    msg = f"cannot write the journal stream {self._stream}: {exc!r}"
                    raise StorageUnavailableError(msg) from exc
            except (OSError, NatsClientError) as exc:
                msg = f"cannot write the journal stream {self._stream}: {exc}"
                raise StorageUnavailableError(msg) from exc
            else:
                if ack.seq != seq:  # pragma: no cover - the server checked it
                    msg = f"the journal stream stored at {ack.seq}, not {seq}"
                    raise FencedError(msg)
                return seq
            resent = True
            _LOGGER.warning("the journal stream has no leader yet: writing again")
            await asyncio.sleep(0.25)

    async def _holds(self, seq: int, data: bytes) -> bool:
        """Whether the stream's message ``seq`` is ``data``."""
        try:
            stored = await self._jetstream.get_msg(self._stream, seq)
        except (OSError, NatsClientError):
            return False
        return stored.data == data

    async def next_epoch(self) -> int:
        """Catch up with the stream and take the next epoch: this writer's sequence is the
        stream's from here on (a standby taking over fences off the one before it)."""
        await self._catch_up()
        if self._expected is not None:
            self._expected = self._index.seq
        epoch = self._index.epoch + 1
        await self._publish(_Record(epoch=epoch))
        return epoch

    async def append(
        self,
        entries: Sequence[JournalEntry],
        snapshots: Sequence[GameState] = (),
        remembered: Sequence[Remembered] = (),
    ) -> None:
        self._index.check(entries)
        record = _Record(
            entries=tuple(_entry_record(e) for e in entries),
            snapshots=tuple(s.model_dump_json() for s in snapshots),
            remembered=tuple(
                _ReplyRecord(
                    client_id=r.client_id, request_id=r.request_id, reply=r.reply.model_dump_json()
                )
                for r in remembered
            ),
        )
        await self._publish(record)

    # --- reads --------------------------------------------------------------------------
    async def epoch(self) -> int:
        await self._catch_up()
        return self._index.epoch

    async def latest_snapshot(self, game: str) -> GameState | None:
        await self._catch_up()
        return self._index.snapshots.get(game)

    async def entries(
        self, game: str, *, after: int = 0, limit: int | None = None
    ) -> list[JournalEntry]:
        await self._catch_up()
        found = self._index.entries.get(game, {})
        versions = sorted(v for v in found if v > after)
        if limit is not None:
            versions = versions[:limit]
        return [found[v] for v in versions]

    async def count(self, game: str) -> int:
        await self._catch_up()
        return len(self._index.entries.get(game, {}))

    async def games(self) -> list[str]:
        await self._catch_up()
        return sorted({*self._index.snapshots, *self._index.entries})

    async def remembered(self) -> list[Remembered]:
        await self._catch_up()
        return list(self._index.remembered.values())


def cluster_journal(
    url: BrokerUrl, *, read_only: bool = False, window: int = DEDUPE_WINDOW, stream: str = STREAM
) -> JetStreamJournal:
    """The journal of the hub serving ``--broker url`` (a NATS cluster's service URL, with
    ``?callout=``): the nodes' NATS addresses from the callout file, the service user."""
    if url.callout is None:
        msg = "the broker URL names no NATS cluster (no ?callout=FILE)"
        raise NatsError(msg)
    try:
        config = read_callout(Path(url.callout))
    except (OSError, ValueError) as exc:
        msg = f"cannot read the NATS callout file {url.callout}: {exc}"
        raise NatsError(msg) from exc
    return JetStreamJournal(
        config.servers,
        url.username,
        url.password.get_secret_value() if url.password else None,
        read_only=read_only,
        window=window,
        stream=stream,
    )
