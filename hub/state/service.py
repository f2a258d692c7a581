"""The authoritative state service: the I/O shell around the pure reducer.

A command flows: transport -> decode -> dedupe lookup -> ``apply`` -> journal commit
(durable) -> publish retained state, event, reply. Commands that arrive together are
committed in one transaction (group commit); nothing is acknowledged before its commit,
and a failed commit rolls the games back and answers ``storage_unavailable``.

Standby: on a NATS cluster several services run, one active (``may_act``: it holds the
lease, hub.nats.lease). Once ``may_act`` turns False, or the journal fences an append off
(``FencedError``: another instance took over), the service applies, stores and publishes
nothing more, and ``fenced()`` returns so that the hub steps down to standby.

Dedupe: a command with a ``request_id`` is applied at most once per (client, request id).
The reply it got is remembered (in memory, ``DedupeWindow``, and in the journal, in the
same commit as its entry), and a resend gets that reply again without being applied.
Rejections from the rules are remembered too; ``rate_limited`` and
``storage_unavailable`` are not (nothing happened, a resend is a fresh try), nor are
commands that could not be decoded.

The turn clock: one timer per game, set for the deadline of the game's current state.
When it fires, a ``TurnTimeout`` for that version joins the same queue as the commands
and takes the same path (reducer, journal, publish); a timer left over from an older
version is refused by the reducer as a version conflict and dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from types import TracebackType
from typing import Self

from hub.auth import RateLimiter
from hub.clock import utc_now
from hub.protocol import (
    Command,
    CommandTopic,
    DecodeError,
    ErrorCode,
    Event,
    Kick,
    Presence,
    Reply,
    Snapshot,
    Start,
    Stats,
    Status,
    Topics,
    decode_command,
    decode_model,
    encode,
    valid_client_id,
)
from hub.state.counters import CommandCounters
from hub.state.dedupe import DedupeWindow
from hub.state.errors import FencedError, StorageUnavailableError
from hub.state.journal import SNAPSHOT_EVERY, Journal, JournalEntry, Remembered
from hub.state.latency import LatencyHistogram, LatencySummary
from hub.state.model import HUB_ACTOR, Actor, GameState, Role, StateCommand, TurnTimeout
from hub.state.recovery import replay
from hub.state.reducer import Accepted, Rejected, apply
from hub.state.view import snapshot
from hub.transport import Inbound, Transport, TransportError

__all__ = ["OnKick", "RoleOf", "ServiceOptions", "StateService"]

_LOGGER = logging.getLogger(__name__)
_BATCH_MAX = 256
_STOP = object()
_FORGOTTEN = frozenset({ErrorCode.RATE_LIMITED, ErrorCode.STORAGE_UNAVAILABLE})
"""Rejections not remembered for dedupe: nothing was judged, a resend is a fresh try."""
RoleOf = Callable[[str], Role]
ExtraRetained = Callable[[], Iterable[tuple[str, bytes]]]
"""Retained (topic, payload) pairs the hub adds beside the service's own (join codes)."""
OnKick = Callable[[str], Awaitable[None]]
"""Called with the client id of each seat holder a committed ``kick`` removed, after the
new state is published (the hub revokes its player session)."""


async def _nobody(_client_id: str) -> None:
    return None


def _always() -> bool:
    return True


@dataclass(frozen=True, slots=True)
class ServiceOptions:
    topics: Topics
    games: tuple[str, ...]
    max_rounds: int
    max_payload_bytes: int
    stats_interval: float
    version: str
    epoch: int
    """This start's epoch (``Journal.next_epoch``), also in the transport's last will."""
    started_at: datetime
    command_rate: float = 20.0
    """Commands per second per client (0 = no limit)."""
    command_burst: int = 40
    default_turn_seconds: int | None = None
    """The turn clock of a ``start`` that does not say (None: no clock)."""
    instance: str | None = None
    """This service's instance name, in ``R/status``."""
    guard_status: bool = False
    """Watch ``R/status`` and publish ours again over anyone else's (on a NATS cluster: the
    last will of an instance that was active before, which the broker publishes when it
    gives up on that instance's connection, maybe long after a standby took over)."""


@dataclass(frozen=True, slots=True)
class _TurnDue:
    """A game's turn clock ran out (as the timer saw it) for the state at ``version``."""

    game: str
    version: int


_RETRY_TIMEOUT_S = 1.0
"""How soon a turn timeout the journal could not store is tried again."""


@dataclass(slots=True)
class _Batch:
    """What one batch of inbound messages produced, published after the commit."""

    entries: list[JournalEntry] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    replies: list[tuple[str, Reply]] = field(default_factory=list)
    dirty: set[str] = field(default_factory=set)
    before: dict[str, GameState] = field(default_factory=dict)
    changed_before: dict[str, datetime] = field(default_factory=dict)
    """When each game the batch changes had last changed before it (restored on failure)."""
    kicked: list[str] = field(default_factory=list)
    """Client ids whose seat a ``kick`` in this batch freed."""
    stale: list[str] = field(default_factory=list)
    """Command topics holding a retained command, to clear."""
    remembered: list[Remembered] = field(default_factory=list)
    """Replies to keep in the dedupe window, committed with the entries."""
    status: bool = False
    """Someone else's status was published: publish ours again."""


class StateService:
    """``async with StateService(...)``: restores, publishes, then serves until exit."""

    def __init__(
        self,
        transport: Transport,
        journal: Journal,
        options: ServiceOptions,
        role_of: RoleOf,
        *,
        clock: Callable[[], datetime] = utc_now,
        extra_retained: ExtraRetained = tuple,
        on_kick: OnKick = _nobody,
        may_act: Callable[[], bool] = _always,
    ) -> None:
        self._transport = transport
        self._may_act = may_act
        """False once this instance is not the active service any more (its lease is lost):
        from then on it applies, stores and publishes nothing."""
        self._fenced = asyncio.Event()
        self._journal = journal
        self._dedupe = DedupeWindow()
        self._opts = options
        self._topics = options.topics
        self._role_of = role_of
        self._clock = clock
        self._games: dict[str, GameState] = {}
        self._changed_at: dict[str, datetime] = {}
        self._online: dict[str, bool] = {}
        self._counters = CommandCounters(options.games)
        self._extra_retained = extra_retained
        self._on_kick = on_kick
        self._queue: asyncio.Queue[Inbound | _TurnDue | object] = asyncio.Queue()
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._closing = False
        self._tasks: list[asyncio.Task[None]] = []
        self.epoch = options.epoch
        self._started_at = options.started_at
        self._started_mono = time.monotonic()
        self._limiter = RateLimiter(options.command_rate, options.command_burst)
        self._latency = LatencyHistogram()
        self._clearing: set[str] = set()
        """Command topics whose retained command we cleared: the broker echoes the empty
        payload back to us once."""

    # --- lifecycle ---------------------------------------------------------------------
    async def __aenter__(self) -> Self:
        for game in self._opts.games:
            self._games[game] = await self._restore(game)
            self._changed_at[game] = self._games[game].updated_at
        self._dedupe = DedupeWindow(remembered=await self._journal.remembered())
        # Subscribed before ``online`` is published: a client that sees the status (after a
        # standby took over) and sends at once finds the service listening.
        filters = [self._topics.command_filter, self._topics.presence_filter]
        if self._opts.guard_status:
            filters.append(self._topics.status)
        await self._transport.subscribe(*filters)
        await self._republish()
        self._transport.on_reconnect(self._republish)
        self._tasks = [
            asyncio.create_task(self._pump(), name="state-pump"),
            asyncio.create_task(self._serve(), name="state-serve"),
            asyncio.create_task(self._stats_loop(), name="state-stats"),
        ]
        for game in self._games:
            self._set_timer(game)
        _LOGGER.info(
            "state service up: epoch %d, games %s", self.epoch, ", ".join(self._opts.games)
        )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        pump, serve, stats = self._tasks
        self._closing = True
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        for task in (pump, stats):
            task.cancel()
        self._queue.put_nowait(_STOP)  # serve drains what arrived before, then stops
        await asyncio.gather(pump, stats, serve, return_exceptions=True)
        if self._acting():
            with contextlib.suppress(StorageUnavailableError):
                await self._journal.append([], list(self._games.values()))
            await self._publish_status("offline")
        _LOGGER.info("state service stopped")

    async def _republish(self) -> None:
        """Retained status and every game's state: at start and after each reconnect,
        since a broker may have lost its retained messages."""
        await self._publish_status("online")
        for game in self._games:
            await self._publish_state(game)
        await self.publish_extra()

    async def publish_extra(self) -> None:
        """Publish the hub's extra retained messages: at start, after each reconnect, and
        when the hub changes them (a rotated join code)."""
        for topic, payload in self._extra_retained():
            await self._send(topic, payload, retain=True)

    async def _restore(self, game: str) -> GameState:
        base = await self._journal.latest_snapshot(game)
        if base is None:
            base = GameState.new(game, max_rounds=self._opts.max_rounds, now=self._clock())
            await self._journal.append([], [base])
            return base
        state = replay(base, await self._journal.entries(game, after=base.version))
        _LOGGER.info("restored %s at version %d", game, state.version)
        return state

    # --- read access for the CLI/HTTP side ------------------------------------------------
    def snapshot(self, game: str) -> Snapshot | None:
        """The game's snapshot as last published (or about to be), None for unknown games."""
        if game not in self._games:
            return None
        return snapshot(
            self._games[game],
            epoch=self.epoch,
            online=self._online,
            updated_at=self._changed_at[game],
        )

    def rejections(self) -> dict[ErrorCode, int]:
        """Rejected commands since start, by error code."""
        return self._counters.by_code()

    def latency(self) -> LatencySummary:
        """Command received -> its state, event and reply published (commit included)."""
        return self._latency.summary()

    def _acting(self) -> bool:
        return not self._fenced.is_set() and self._may_act()

    async def fenced(self) -> None:
        """Return when the journal refused an append because another writer extended it
        (a standby took over): this instance must step down."""
        await self._fenced.wait()

    @property
    def running(self) -> bool:
        """True while the service takes commands."""
        return bool(self._tasks) and not any(task.done() for task in self._tasks)

    # --- the loop ------------------------------------------------------------------------
    async def _pump(self) -> None:
        async for message in self._transport.messages():
            self._queue.put_nowait(message)

    async def _serve(self) -> None:
        while True:
            first = await self._queue.get()
            batch: list[Inbound | _TurnDue] = []
            stop = first is _STOP
            if isinstance(first, Inbound | _TurnDue):
                batch.append(first)
            while not stop and len(batch) < _BATCH_MAX and not self._queue.empty():
                item = self._queue.get_nowait()
                if item is _STOP:
                    stop = True
                elif isinstance(item, Inbound | _TurnDue):
                    batch.append(item)
            if batch:
                try:
                    await self._process(batch)
                except Exception:  # one guard per batch: log, keep serving
                    _LOGGER.exception("failed to process a batch of %d messages", len(batch))
            if stop:
                return

    async def _process(self, messages: list[Inbound | _TurnDue]) -> None:
        if not self._acting():
            _LOGGER.warning("not the active service any more: %d messages left", len(messages))
            return
        now = self._clock()
        batch = _Batch()
        commands: list[Inbound] = []
        due: list[_TurnDue] = []
        for message in messages:
            if isinstance(message, _TurnDue):
                due.append(message)
                self._turn_timeout(message, now, batch)
                continue
            where = self._topics.parse_command(message.topic)
            if where is not None:
                if self._stale(message, batch):
                    continue
                commands.append(message)
                self._command(message, where, now, batch)
                continue
            client_id = self._topics.parse_presence(message.topic)
            if client_id is not None:
                self._presence(message, client_id, now, batch)
            elif message.topic == self._topics.status and self._opts.guard_status:
                batch.status = batch.status or self._foreign_status(message.payload)
        stored = True
        if batch.entries or batch.remembered:
            stored = await self._commit(batch)
        for game in {*batch.before, *(d.game for d in due)}:
            self._set_timer(game, retry=not stored)
        if batch.status:
            await self._publish_status("online")
        for game in sorted(batch.dirty):
            await self._publish_state(game)
        for event in batch.events:
            await self._send(self._topics.game_events(event.game), encode(event))
        for reply_to, reply in batch.replies:
            await self._send(self._topics.client_reply(reply_to), encode(reply))
        for topic in batch.stale:
            self._clearing.add(topic)
            await self._send(topic, b"", retain=True)
        for client_id in batch.kicked:
            await self._on_kick(client_id)
        done = time.monotonic()
        for message in commands:
            self._latency.observe(done - message.received_at)

    async def _commit(self, batch: _Batch) -> bool:
        """Store the batch's entries; False (and everything rolled back) if that failed."""
        snapshots = [
            self._games[game]
            for game, old in batch.before.items()
            if self._games[game].version // SNAPSHOT_EVERY > old.version // SNAPSHOT_EVERY
        ]
        try:
            await self._journal.append(batch.entries, snapshots, batch.remembered)
        except FencedError as exc:
            _LOGGER.error(  # noqa: TRY400 - expected, no traceback
                "fenced off, stepping down; %d commands dropped: %s", len(batch.entries), exc
            )
            self._fenced.set()
            return self._roll_back(batch)
        except StorageUnavailableError as exc:
            _LOGGER.error("journal write failed; %d commands refused: %s", len(batch.entries), exc)  # noqa: TRY400
            return self._roll_back(batch)
        for entry in batch.entries:
            self._counters.accepted(entry.game)
        return True

    def _roll_back(self, batch: _Batch) -> bool:
        """Undo what the batch did in memory, its replies turned into refusals; False."""
        for item in batch.remembered:  # never stored: a resend is judged afresh
            self._dedupe.forget(item.client_id, item.request_id)
        self._games.update(batch.before)
        self._changed_at.update(batch.changed_before)
        batch.dirty -= set(batch.before)
        batch.events.clear()
        batch.kicked.clear()
        batch.replies = [
            (to, reply if not reply.ok else self._unstored(reply)) for to, reply in batch.replies
        ]
        for entry in batch.entries:
            self._counters.rejected(entry.game, ErrorCode.STORAGE_UNAVAILABLE)
        return False

    @staticmethod
    def _unstored(reply: Reply) -> Reply:
        return Reply.rejected(
            reply.request_id,
            ErrorCode.STORAGE_UNAVAILABLE,
            "the hub could not store the command (disk full or read-only); nothing changed",
        )

    def _reject(
        self,
        batch: _Batch,
        reply_to: str,
        game: str | None,
        code: ErrorCode,
        msg: str,
        *,
        rid: str | None,
        remember: bool = False,
    ) -> None:
        _LOGGER.info("rejected command from %s on %s: %s: %s", reply_to, game, code, msg)
        self._counters.rejected(game, code)
        reply = Reply.rejected(rid, code, msg)
        batch.replies.append((reply_to, reply))
        if remember and rid is not None and code not in _FORGOTTEN:
            self._remember(batch, reply_to, rid, reply)

    def _remember(self, batch: _Batch, client_id: str, request_id: str, reply: Reply) -> None:
        self._dedupe.put(client_id, request_id, reply)
        batch.remembered.append(Remembered(client_id, request_id, reply))

    def _command(self, message: Inbound, where: CommandTopic, now: datetime, batch: _Batch) -> None:
        command: Command | None = None
        failure: DecodeError | None = None
        try:
            command = decode_command(message.payload, max_bytes=self._opts.max_payload_bytes)
            request_id = command.request_id
        except DecodeError as exc:
            failure, request_id = exc, exc.request_id
        if message.sender is not None and message.sender != where.client_id:
            self._spoofed(message, where, batch, request_id)
            return
        if not self._limiter.allow(where.client_id, time.monotonic()):
            self._reject(
                batch,
                where.client_id,
                where.game,
                ErrorCode.RATE_LIMITED,
                f"more than {self._opts.command_rate:g} commands per second; slow down",
                rid=request_id,
            )
            return
        if command is None:
            assert failure is not None
            self._reject(
                batch, where.client_id, where.game, failure.code, failure.message, rid=request_id
            )
            return
        if command.request_id is not None:
            earlier = self._dedupe.get(where.client_id, command.request_id)
            if earlier is not None:
                _LOGGER.info(
                    "resent command %s from %s: its first reply again",
                    command.request_id,
                    where.client_id,
                )
                batch.replies.append((where.client_id, earlier))
                return
        state = self._games.get(where.game)
        if state is None:
            known = ", ".join(self._games)
            self._reject(
                batch,
                where.client_id,
                where.game,
                ErrorCode.UNKNOWN_GAME,
                f"no game {where.game[:40]!r}; this hub runs: {known}",
                rid=command.request_id,
                remember=True,
            )
            return
        if isinstance(command, Start) and command.turn_seconds is None:
            # Journaled with the default filled in, so a replay does not depend on config.
            command = command.model_copy(update={"turn_seconds": self._opts.default_turn_seconds})
        actor = Actor(client_id=where.client_id, role=self._role_of(where.client_id))
        outcome = apply(state, command, actor=actor, now=now)
        if isinstance(outcome, Rejected):
            self._reject(
                batch,
                where.client_id,
                where.game,
                outcome.code,
                outcome.message,
                rid=command.request_id,
                remember=True,
            )
            return
        if isinstance(command, Kick) and (holder := state.table.holder(command.seat)):
            batch.kicked.append(holder.client_id)
        self._accepted(batch, where.game, command, actor=actor, outcome=outcome, now=now)
        reply = Reply.accepted(command.request_id, outcome.state.version)
        batch.replies.append((where.client_id, reply))
        if command.request_id is not None:
            self._remember(batch, where.client_id, command.request_id, reply)

    def _accepted(
        self,
        batch: _Batch,
        game: str,
        command: StateCommand,
        *,
        actor: Actor,
        outcome: Accepted,
        now: datetime,
    ) -> None:
        batch.before.setdefault(game, self._games[game])
        batch.changed_before.setdefault(game, self._changed_at[game])
        self._games[game] = outcome.state
        self._changed_at[game] = now
        batch.dirty.add(game)
        batch.entries.append(
            JournalEntry(
                game=game,
                version=outcome.state.version,
                epoch=self.epoch,
                at=now,
                actor=actor,
                command=command,
                event=outcome.event,
            )
        )
        batch.events.append(outcome.event)

    # --- the turn clock ------------------------------------------------------------------
    def _set_timer(self, game: str, *, retry: bool = False) -> None:
        """(Re)arm the game's timer for the deadline of its current state, if any."""
        old = self._timers.pop(game, None)
        if old is not None:
            old.cancel()
        state = self._games[game]
        deadline = state.table.turn_deadline
        if deadline is None or self._closing:
            return
        delay = max(0.0, (deadline - self._clock()).total_seconds())
        if retry:
            delay = max(delay, _RETRY_TIMEOUT_S)
        due = _TurnDue(game, state.version)
        self._timers[game] = asyncio.get_running_loop().call_later(
            delay, self._queue.put_nowait, due
        )

    def _turn_timeout(self, due: _TurnDue, now: datetime, batch: _Batch) -> None:
        state = self._games[due.game]
        deadline = state.table.turn_deadline
        if deadline is not None and now < deadline:
            return  # the wall clock is behind the timer's: _process sets it again
        command = TurnTimeout(expected_version=due.version, seat=state.table.current_player_id)
        outcome = apply(state, command, actor=HUB_ACTOR, now=now)
        if isinstance(outcome, Rejected):
            _LOGGER.debug("stale turn timer for %s v%d: %s", due.game, due.version, outcome.code)
            return
        _LOGGER.info("%s: seat %d ran out of time", due.game, command.seat)
        self._accepted(batch, due.game, command, actor=HUB_ACTOR, outcome=outcome, now=now)

    def _stale(self, message: Inbound, batch: _Batch) -> bool:
        """A command is applied only when it is sent. A retained one (which a broker replays
        at every subscription, i.e. at each start of the service) is ignored without a
        reply and cleared; the empty payload that clears it comes back once, ignored too.
        (The embedded broker refuses retained commands; Mosquitto's ACL cannot.)"""
        if message.retained:
            if message.payload:
                _LOGGER.warning(
                    "ignored a retained command on %s (%d bytes): commands count only when"
                    " sent; clearing it",
                    message.topic,
                    len(message.payload),
                )
                batch.stale.append(message.topic)
            return True
        if message.sender is None and not message.payload and message.topic in self._clearing:
            self._clearing.discard(message.topic)
            return True
        return False

    def _spoofed(
        self, message: Inbound, where: CommandTopic, batch: _Batch, request_id: str | None
    ) -> None:
        """A client published on another client's command topic (only the embedded broker
        can tell; an external broker's ACL refuses it before it gets here)."""
        sender = message.sender or ""
        if not valid_client_id(sender):
            _LOGGER.warning(
                "dropped a command on %s from client %r, which has no reply topic",
                message.topic,
                sender,
            )
            return
        self._reject(
            batch,
            sender,
            where.game,
            ErrorCode.FORBIDDEN,
            f"you are {sender!r}: send commands only on"
            f" {self._topics.game_command(where.game, sender)}",
            rid=request_id,
        )

    def _presence(self, message: Inbound, client_id: str, now: datetime, batch: _Batch) -> None:
        if message.sender is not None and message.sender != client_id:
            _LOGGER.warning("ignored presence for %s published by %s", client_id, message.sender)
            return
        if not message.payload:
            online = False  # the retained presence was cleared
        else:
            try:
                online = decode_model(message.payload, Presence).state == "online"
            except DecodeError as exc:
                _LOGGER.warning("ignored malformed presence of %s: %s", client_id, exc.message)
                return
        if self._online.get(client_id, False) == online:
            self._online[client_id] = online
            return
        self._online[client_id] = online
        for game, state in self._games.items():
            if state.table.seat_of(client_id) is not None:
                self._changed_at[game] = now
                batch.dirty.add(game)

    # --- publishing ------------------------------------------------------------------------
    async def _send(self, topic: str, payload: bytes, *, retain: bool = False) -> None:
        if not self._acting():
            _LOGGER.debug("not the active service: not publishing %s", topic)
            return
        try:
            await self._transport.publish(topic, payload, retain=retain)
        except TransportError as exc:  # the link reconnects and we republish then
            _LOGGER.warning("could not publish %s: %s", topic, exc)

    async def _publish_state(self, game: str) -> None:
        view = self.snapshot(game)
        assert view is not None
        await self._send(self._topics.game_state(game), encode(view), retain=True)

    def _foreign_status(self, payload: bytes) -> bool:
        """Whether a status seen on ``R/status`` is not this service's own online one."""
        try:
            seen = decode_model(payload, Status)
        except DecodeError:
            return True  # cleared or garbled: ours goes back
        mine = (seen.state, seen.epoch, seen.instance)
        if mine == ("online", self.epoch, self._opts.instance):
            return False
        _LOGGER.warning(
            "R/status says %s (epoch %d, instance %s): publishing ours again",
            seen.state,
            seen.epoch,
            seen.instance,
        )
        return True

    async def _publish_status(self, state: str) -> None:
        status = Status(
            state="online" if state == "online" else "offline",
            epoch=self.epoch,
            version=self._opts.version,
            started_at=self._started_at,
            instance=self._opts.instance,
        )
        await self._send(self._topics.status, encode(status), retain=True)

    def stats(self) -> Stats:
        return Stats(
            clients_connected=sum(self._online.values()),
            commands_accepted=self._counters.total_accepted,
            commands_rejected=self._counters.total_rejected,
            games=self._counters.per_game(),
            uptime_s=round(time.monotonic() - self._started_mono, 3),
            epoch=self.epoch,
            at=self._clock(),
        )

    async def _stats_loop(self) -> None:
        while True:
            await self._send(self._topics.stats, encode(self.stats()), retain=True)
            await asyncio.sleep(self._opts.stats_interval)
