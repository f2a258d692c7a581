"""The node: game state in, screen and LEDs out; button presses in, commands out.

``Node.handle`` takes one input at a time (link events, button presses, clock ticks) on
the event loop and keeps a ``TableView``; after each input the screen, the LEDs, and
systemd's status line are brought up to date. The decisions themselves are pure functions:
``command_for`` (which command a button sends in which status) and ``turn_lights``.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Protocol

from hub.protocol import (
    DecodeError,
    Event,
    GameStatus,
    Pause,
    Reply,
    Resume,
    Snapshot,
    Start,
    Status,
    encode,
)
from pi_node.cache import SnapshotCache
from pi_node.hardware import ButtonAction, Hardware, Light, TurnLights
from pi_node.link import Inbound, LinkDown, LinkEvent, LinkRefused, LinkUp
from pi_node.render import LinkState, TableView
from pi_node.screen import Screen
from pi_node.sdnotify import Notifier
from pi_node.wire import JoinCodeUpdate, Subscriptions, decode_update

__all__ = [
    "ButtonCommand",
    "Node",
    "NodeInput",
    "Outbox",
    "Pressed",
    "Redraw",
    "Tick",
    "command_for",
    "turn_lights",
]

_LOGGER = logging.getLogger(__name__)
NOTICE_SECONDS = 8.0
"""How long a notice (a refused button press, say) stays on the screen."""
REPLY_TIMEOUT = 3.0
"""A command with no reply this long after it was sent is sent again, with the same
request id (the hub applies it at most once: docs/protocol.md, "Retries and duplicates");
the wait doubles after each resend, up to RESEND_MAX_INTERVAL."""
RESEND_MAX_INTERVAL = 10.0
GIVE_UP_AFTER = 60.0
"""A command still unanswered this long after its first send is given up (and said so);
until then further presses wait for it."""
SHORT_SESSION = 20.0
"""A connection the broker closes within this many seconds counts as a short one..."""
TAKEOVER_WINDOW = 60.0
"""...and two of them within this many seconds mean another node uses our identity (the
broker closes the older connection of a client id when a new one logs in)."""


@dataclass(frozen=True, slots=True)
class Pressed:
    """A button was pressed."""

    action: ButtonAction


@dataclass(frozen=True, slots=True)
class Tick:
    """Time passed (expires notices and unanswered commands, moves the turn clock)."""


@dataclass(frozen=True, slots=True)
class Redraw:
    """The terminal was resized (SIGWINCH): draw the screen again."""


NodeInput = LinkEvent | Pressed | Tick | Redraw
ButtonCommand = Start | Resume | Pause


class Outbox(Protocol):
    """What the node needs from the link."""

    def establish(self) -> None: ...

    def publish(self, topic: str, payload: bytes, *, qos: int = 1) -> bool: ...


def command_for(
    action: ButtonAction, snapshot: Snapshot, request_id: str | None = None
) -> ButtonCommand | None:
    """The command a button sends in the game's status, or None (nothing to do).

    "start/next" starts a game that has not started or has finished, and resumes a paused
    one; "pause" pauses a game in progress. The command carries ``expected_version`` so
    a press based on an outdated screen is refused instead of applied.
    """
    version = snapshot.version
    status = snapshot.status
    if action is ButtonAction.START_NEXT:
        if status in (GameStatus.NOT_STARTED, GameStatus.FINISHED):
            return Start(type="start", request_id=request_id, expected_version=version)
        if status is GameStatus.PAUSED:
            return Resume(type="resume", request_id=request_id, expected_version=version)
        return None
    if status is GameStatus.IN_PROGRESS:
        return Pause(type="pause", request_id=request_id, expected_version=version)
    return None


def turn_lights(snapshot: Snapshot | None, *, live: bool) -> TurnLights:
    """The seat LEDs: the seat to move lit while in progress, blinking while paused, all
    off otherwise, and off while the state is not confirmed by the hub."""
    if snapshot is None or not live:
        return (Light.OFF, Light.OFF)
    if snapshot.status is GameStatus.IN_PROGRESS:
        light = Light.ON
    elif snapshot.status is GameStatus.PAUSED:
        light = Light.BLINK
    else:
        return (Light.OFF, Light.OFF)
    return (light, Light.OFF) if snapshot.current_player_id == 1 else (Light.OFF, light)


def _describe(snapshot: Snapshot) -> str:
    if snapshot.status in (GameStatus.IN_PROGRESS, GameStatus.PAUSED):
        where = (
            f" round {snapshot.current_round}/{snapshot.max_rounds},"
            f" seat {snapshot.current_player_id} to move"
        )
    else:
        where = ""
    return f"game {snapshot.game} v{snapshot.version} {snapshot.status.value}{where}"


@dataclass(frozen=True, slots=True)
class _Pending:
    """A command sent and not answered yet, and when to send it again."""

    request_id: str
    command: str
    payload: bytes
    first_sent: float
    resend_at: float
    interval: float
    sends: int = 1


class Node:
    """The table's view of one game; see the module docstring."""

    def __init__(
        self,
        *,
        game: str,
        identity: str,
        subs: Subscriptions,
        command_topic: str,
        join_link: Callable[[str | None, str | None], str | None],
        outbox: Outbox,
        hardware: Hardware,
        screen: Screen,
        cache: SnapshotCache,
        notifier: Notifier,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._game = game
        self._identity = identity
        self._subs = subs
        self._command_topic = command_topic
        self._join_link = join_link
        self._outbox = outbox
        self._hardware = hardware
        self._screen = screen
        self._cache = cache
        self._notifier = notifier
        self._clock = clock
        self._wall_clock = wall_clock
        self._hub_join_url: str | None = None
        self._view = TableView(
            game=game, join_url=join_link(None, None), identity=identity, now=self._second()
        )
        self._shown: TableView | None = None
        self._status_line = ""
        self._pending: _Pending | None = None
        self._notice_until = 0.0
        self._last_problem: str | None = None
        self._up_since: float | None = None
        self._short_drops: list[float] = []

    @property
    def view(self) -> TableView:
        """What the screen shows now."""
        return self._view

    @property
    def status_line(self) -> str:
        """One line for systemd's STATUS."""
        view = self._view
        snapshot = view.snapshot
        if view.link is LinkState.CONNECTED:
            if view.live and snapshot is not None:
                return f"live: {_describe(snapshot)}"
            return "connected; waiting for the game state"
        if view.link is LinkState.REFUSED:
            return f"login refused: {view.link_detail}"
        if view.link is LinkState.TAKEN_OVER:
            return f"another pi-node is logged in as {self._identity}; backing off"
        cached = f"; showing cached v{snapshot.version}" if snapshot is not None else ""
        if view.link is LinkState.DOWN:
            return f"hub unreachable, retrying{cached}"
        return f"connecting{cached}"

    def start(self) -> None:
        """Show the cached game (stale) until the hub confirms one."""
        cached = self._cache.load(self._game)
        if cached is not None:
            _LOGGER.info(
                "showing the cached %s (saved %s) until the hub confirms it",
                _describe(cached.snapshot),
                cached.saved_at.isoformat(timespec="seconds"),
            )
            self._view = replace(
                self._view,
                snapshot=cached.snapshot,
                live=False,
                join_code=cached.join_code,
                join_url=self._join_link(cached.join_code, None),
            )
        self._refresh()

    async def handle(self, item: NodeInput) -> None:
        """Take one input and bring the screen, LEDs and status up to date."""
        if isinstance(item, Inbound):
            await self._on_message(item)
        elif isinstance(item, LinkUp):
            self._on_up()
        elif isinstance(item, LinkDown):
            self._on_down(item)
        elif isinstance(item, LinkRefused):
            self._on_refused(item)
        elif isinstance(item, Pressed):
            self._on_press(item.action)
        elif isinstance(item, Redraw):
            self._shown = None
        else:
            self._on_tick()
        self._refresh()

    # --- the link ----------------------------------------------------------------------
    def _on_up(self) -> None:
        _LOGGER.info("connected to the broker as %s", self._identity)
        self._last_problem = None
        self._up_since = self._clock()
        self._outbox.establish()
        link = LinkState.TAKEN_OVER if self._taken_over() else LinkState.CONNECTED
        self._view = replace(self._view, link=link, link_detail=None, live=False)

    def _taken_over(self) -> bool:
        now = self._clock()
        self._short_drops = [t for t in self._short_drops if now - t < TAKEOVER_WINDOW]
        return len(self._short_drops) >= 2

    def _on_down(self, event: LinkDown) -> None:
        was = self._view.link
        if was is LinkState.REFUSED and not event.unreachable:
            return  # the broker closing a refused connection: still "refused"
        up_since, self._up_since = self._up_since, None
        if up_since is not None and self._clock() - up_since < SHORT_SESSION:
            self._short_drops.append(self._clock())
            if self._taken_over():
                if was is not LinkState.TAKEN_OVER:
                    _LOGGER.error(
                        "the broker keeps closing the connection soon after login: another"
                        " pi-node is logged in as %s (only one connection per user);"
                        " backing off",
                        self._identity,
                    )
                self._view = replace(
                    self._view, link=LinkState.TAKEN_OVER, link_detail=event.reason, live=False
                )
                return
        if was in (LinkState.CONNECTED, LinkState.TAKEN_OVER):
            _LOGGER.warning("lost the broker (%s); reconnecting", event.reason)
        elif event.reason != self._last_problem:
            _LOGGER.warning("cannot reach the broker (%s); retrying", event.reason)
        else:
            _LOGGER.debug("still cannot reach the broker (%s)", event.reason)
        self._last_problem = event.reason
        self._view = replace(self._view, link=LinkState.DOWN, link_detail=event.reason, live=False)

    def _on_refused(self, event: LinkRefused) -> None:
        if event.reason != self._last_problem:
            _LOGGER.error(
                "the broker refused the login as %s (%s): check the username and password;"
                " retrying",
                self._identity,
                event.reason,
            )
        self._last_problem = event.reason
        self._view = replace(
            self._view, link=LinkState.REFUSED, link_detail=event.reason, live=False
        )

    # --- messages ----------------------------------------------------------------------
    async def _on_message(self, message: Inbound) -> None:
        try:
            update = decode_update(self._subs, message.topic, message.payload)
        except DecodeError as exc:
            _LOGGER.warning("ignoring a malformed message on %s: %s", message.topic, exc.message)
            return
        if isinstance(update, Snapshot):
            await self._on_snapshot(update)
        elif isinstance(update, Status):
            self._on_status(update)
        elif isinstance(update, Event):
            _LOGGER.info("event v%d: %s %s", update.version, update.by, update.type)
            self._view = replace(self._view, last_event=update)
        elif isinstance(update, Reply):
            self._on_reply(update)
        elif isinstance(update, JoinCodeUpdate):
            await self._on_join_code(update)
        else:
            _LOGGER.debug("ignoring a message on %s", message.topic)

    async def _on_snapshot(self, snapshot: Snapshot) -> None:
        old = self._view
        if old.snapshot != snapshot or not old.live:
            _LOGGER.info("%s", _describe(snapshot))
        self._view = replace(old, snapshot=snapshot, live=True, now=self._second())
        await self._save()

    def _on_status(self, status: Status) -> None:
        old_epoch, was_online = self._view.epoch, self._view.hub_online
        online = status.state == "online"
        if online and old_epoch is not None and status.epoch != old_epoch:
            _LOGGER.warning("the hub restarted (epoch %d -> %d)", old_epoch, status.epoch)
        elif online and was_online is not True:
            _LOGGER.info("the hub is online (epoch %d, version %s)", status.epoch, status.version)
        elif not online and was_online is not False:
            _LOGGER.warning("the hub's state service is offline (epoch %d)", status.epoch)
        self._view = replace(self._view, hub_online=online, epoch=status.epoch)

    def _on_reply(self, reply: Reply) -> None:
        pending = self._pending
        if pending is None or reply.request_id != pending.request_id:
            _LOGGER.debug("a reply to no pending command: %s", reply.request_id)
            return
        self._pending = None
        if reply.ok:
            _LOGGER.info("%s accepted (version %s)", pending.command, reply.version)
            self._notify_people(None)
        elif reply.error is not None:
            _LOGGER.warning(
                "%s refused: %s: %s", pending.command, reply.error.code, reply.error.message
            )
            self._notify_people(f"{pending.command} refused: {reply.error.message}")

    async def _on_join_code(self, update: JoinCodeUpdate) -> None:
        code = update.code
        if code != self._view.join_code:
            _LOGGER.info("join code %s", "set" if code is not None else "cleared")
        self._hub_join_url = update.url
        url = self._join_link(code, update.url)
        self._view = replace(self._view, join_code=code, join_url=url)
        await self._save()

    async def _save(self) -> None:
        view = self._view
        if view.snapshot is not None and view.live:
            await asyncio.to_thread(self._cache.save, view.snapshot, view.join_code)

    # --- buttons and time --------------------------------------------------------------
    def _on_press(self, action: ButtonAction) -> None:
        view = self._view
        snapshot = view.snapshot
        if (
            view.link is not LinkState.CONNECTED
            or not view.live
            or snapshot is None
            or view.hub_online is False
        ):
            _LOGGER.warning("button %s ignored: the hub is not reachable", action)
            self._notify_people("the hub is not reachable: button ignored")
            return
        if self._pending is not None:
            _LOGGER.info(
                "button %s ignored: waiting for the reply to %s", action, self._pending.command
            )
            return
        request_id = uuid.uuid4().hex[:12]
        command = command_for(action, snapshot, request_id)
        if command is None:
            _LOGGER.info("button %s: nothing to do while %s", action, snapshot.status)
            return
        payload = encode(command)
        if not self._outbox.publish(self._command_topic, payload):
            _LOGGER.warning("button %s: %s not sent, the link is down", action, command.type)
            self._notify_people("the hub is not reachable: button ignored")
            return
        _LOGGER.info("button %s: sent %s (request %s)", action, command.type, request_id)
        now = self._clock()
        self._pending = _Pending(
            request_id,
            command.type,
            payload,
            first_sent=now,
            resend_at=now + REPLY_TIMEOUT,
            interval=REPLY_TIMEOUT,
        )

    def _second(self) -> datetime:
        return self._wall_clock().replace(microsecond=0)

    def _on_tick(self) -> None:
        now = self._clock()
        snapshot = self._view.snapshot
        if snapshot is not None and snapshot.turn_deadline is not None:
            self._view = replace(self._view, now=self._second())  # the countdown moves
        taken = self._view.link is LinkState.TAKEN_OVER
        if taken and self._up_since is not None and not self._taken_over():
            # connected, and nobody took the connection over for a while
            self._view = replace(self._view, link=LinkState.CONNECTED)
        if self._view.notice is not None and now >= self._notice_until:
            self._view = replace(self._view, notice=None)
        pending = self._pending
        if pending is not None and now >= pending.resend_at:
            self._resend(pending, now)

    def _resend(self, pending: _Pending, now: float) -> None:
        """No reply yet: send the same command again (same request id), or give up."""
        waited = now - pending.first_sent
        if waited >= GIVE_UP_AFTER:
            _LOGGER.warning(
                "no reply to %s (request %s) in %.0f s after %d sends; giving up",
                pending.command,
                pending.request_id,
                waited,
                pending.sends,
            )
            self._pending = None
            self._notify_people(f"no answer from the hub: {pending.command} may not be done")
            return
        interval = min(pending.interval * 2, RESEND_MAX_INTERVAL)
        sent = self._outbox.publish(self._command_topic, pending.payload)
        if sent:
            _LOGGER.warning(
                "no reply to %s (request %s) in %.0f s; sending it again",
                pending.command,
                pending.request_id,
                waited,
            )
            self._notify_people(f"sending {pending.command} again...")
        resend_at = min(now + interval, pending.first_sent + GIVE_UP_AFTER)
        self._pending = replace(
            pending, resend_at=resend_at, interval=interval, sends=pending.sends + sent
        )

    def _notify_people(self, notice: str | None) -> None:
        self._view = replace(self._view, notice=notice)
        self._notice_until = self._clock() + NOTICE_SECONDS

    # --- outputs -----------------------------------------------------------------------
    def _refresh(self) -> None:
        view = self._view
        if view == self._shown:
            return
        self._shown = view
        self._screen.show(view)
        self._hardware.show(turn_lights(view.snapshot, live=view.live))
        line = self.status_line
        if line != self._status_line:
            self._status_line = line
            self._notifier.status(line)
