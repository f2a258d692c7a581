"""One interface over the three kinds of client the load generator drives.

- MQTT over TCP: paho-mqtt on the worker's event loop (``bench.pahoasync``), or, with
  ``tcp_client="lite"``, the minimal client of ``bench.mqttlite``;
- MQTT over WebSocket through the web bridge (``/mqtt``): ``bench.mqttlite``;
- Socket.IO (the baseline): python-socketio's ``AsyncClient`` (aiohttp), WebSocket only.

Each client reports every game state it receives as ``on_state(version, view)``; ``view``
(status and seat to move) is decoded only for players, spectators read just the version.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import socketio  # type: ignore[import-untyped]

from bench.mqttlite import LiteClient, LiteOptions
from bench.pahoasync import PahoClient

__all__ = [
    "Endpoint",
    "GameClient",
    "Identity",
    "Subscriptions",
    "View",
    "keep_alive",
    "open_client",
    "version_of",
]

Kind = Literal["tcp", "ws", "sio"]
TcpClient = Literal["paho", "lite"]
_VERSION = re.compile(rb'"version":\s*(\d+)')


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where and how clients connect (picklable: it goes to the worker processes)."""

    kind: Kind
    host: str
    port: int
    ws_path: str = "/mqtt"
    tcp_client: TcpClient = "paho"
    topic_root: str = "tablehub"
    game: str = "main"

    @property
    def state_topic(self) -> str:
        return f"{self.topic_root}/games/{self.game}/state"

    def command_topic(self, client_id: str) -> str:
        return f"{self.topic_root}/games/{self.game}/cmd/{client_id}"

    def reply_topic(self, client_id: str) -> str:
        return f"{self.topic_root}/clients/{client_id}/reply"


@dataclass(frozen=True, slots=True)
class Identity:
    client_id: str
    username: str | None = None
    password: str | None = None


@dataclass(frozen=True, slots=True)
class Subscriptions:
    """What an MQTT client subscribes to (Socket.IO clients get every broadcast)."""

    state: bool = True
    state_qos: int = 0
    reply: bool = True
    extra: tuple[str, ...] = field(default_factory=tuple)
    """More filters at QoS 0 (the subscription microbenchmark's topic)."""


@dataclass(frozen=True, slots=True)
class View:
    version: int
    status: str
    current_player_id: int


OnState = Callable[[int, View | None], None]
OnOther = Callable[[str, bytes], None]


def version_of(payload: bytes) -> int:
    """The snapshot's version, without decoding the whole JSON document."""
    match = _VERSION.search(payload)
    if match is None:
        msg = f"no version in {payload[:80]!r}"
        raise ValueError(msg)
    return int(match.group(1))


def _view(state: dict[str, Any]) -> View:
    return View(
        version=int(state["version"]),
        status=str(state["status"]),
        current_player_id=int(state["current_player_id"]),
    )


class GameClient(Protocol):
    def command(self, body: dict[str, Any]) -> None:
        """Send a game command (MQTT: QoS 1 on the client's command topic)."""

    def publish(self, topic: str, payload: bytes) -> None:
        """A raw QoS 0 publish (MQTT only)."""

    def keepalive(self) -> None: ...

    async def close(self) -> None: ...


def keep_alive(clients: Iterable[GameClient | None]) -> None:
    """Each connected client's keep-alive (a worker's tick); one client's failure is its
    own (it shows up as that client's lost commands), not the worker's."""
    for client in clients:
        if client is not None:
            with contextlib.suppress(Exception):
                client.keepalive()


class MqttGameClient:
    def __init__(
        self,
        endpoint: Endpoint,
        identity: Identity,
        *,
        full: bool,
        on_state: OnState,
        on_other: OnOther | None,
    ) -> None:
        self.identity = identity
        self._endpoint = endpoint
        self._full = full
        self._on_state = on_state
        self._on_other = on_other
        self._state_topic = endpoint.state_topic
        self._command_topic = endpoint.command_topic(identity.client_id)
        self._link: PahoClient | LiteClient | None = None

    async def open(self, subs: Subscriptions) -> None:
        ep, me = self._endpoint, self.identity
        if ep.kind == "tcp" and ep.tcp_client == "paho":
            self._link = await PahoClient.open(
                ep.host,
                ep.port,
                me.client_id,
                self._message,
                username=me.username,
                password=me.password,
            )
        else:
            opts = LiteOptions(
                host=ep.host,
                port=ep.port,
                client_id=me.client_id,
                username=me.username,
                password=me.password,
                websocket_path=ep.ws_path if ep.kind == "ws" else None,
            )
            self._link = await LiteClient.open(opts, self._message)
        filters: list[tuple[str, int]] = []
        if subs.state:
            filters.append((self._state_topic, subs.state_qos))
        if subs.reply:
            filters.append((ep.reply_topic(me.client_id), 1))
        filters += [(topic, 0) for topic in subs.extra]
        if filters:
            await self._link.subscribe(filters)

    def _message(self, topic: str, payload: bytes) -> None:
        if topic == self._state_topic:
            if self._full:
                view = _view(json.loads(payload))
                self._on_state(view.version, view)
            else:
                self._on_state(version_of(payload), None)
        elif self._on_other is not None:
            self._on_other(topic, payload)

    def command(self, body: dict[str, Any]) -> None:
        assert self._link is not None
        self._link.publish(self._command_topic, json.dumps(body).encode(), qos=1)

    def publish(self, topic: str, payload: bytes) -> None:
        assert self._link is not None
        self._link.publish(topic, payload, qos=0)

    def keepalive(self) -> None:
        link = self._link
        if isinstance(link, PahoClient):
            link.misc()
        elif (
            link is not None
            and not link.closed.is_set()
            and time.monotonic() - link.last_sent > link.opts.keepalive / 2
        ):
            link.ping()

    async def close(self) -> None:
        if self._link is not None:
            await self._link.disconnect()


class SioGameClient:
    """A python-socketio client of the baseline: every broadcast reaches it."""

    def __init__(
        self, endpoint: Endpoint, *, full: bool, on_state: OnState, on_other: OnOther | None
    ) -> None:
        self._endpoint = endpoint
        self._full = full
        self._on_state = on_state
        self._on_other = on_other
        self._sio: Any = socketio.AsyncClient(reconnection=False)
        self._sio.on("game_state", self._state)
        self._sio.on("error", self._error)
        self._pending: set[asyncio.Task[None]] = set()

    async def open(self) -> None:
        url = f"http://{self._endpoint.host}:{self._endpoint.port}"
        if self._endpoint.game != "main":  # the baseline puts the client in that game's room
            url += f"?game={self._endpoint.game}"
        await self._sio.connect(url, transports=["websocket"], wait_timeout=20)

    def _state(self, state: dict[str, Any]) -> None:
        if self._full:
            view = _view(state)
            self._on_state(view.version, view)
        else:
            self._on_state(int(state["version"]), None)

    def _error(self, body: dict[str, Any]) -> None:
        if self._on_other is not None:
            self._on_other("error", json.dumps(body).encode())

    def command(self, body: dict[str, Any]) -> None:
        task = asyncio.ensure_future(self._sio.emit("client_message", body))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    def publish(self, topic: str, payload: bytes) -> None:
        msg = "Socket.IO clients have no topics"
        raise NotImplementedError(msg)

    def keepalive(self) -> None:
        """engine.io answers the server's pings by itself."""

    async def close(self) -> None:
        await self._sio.disconnect()


async def open_client(
    endpoint: Endpoint,
    identity: Identity,
    subs: Subscriptions,
    *,
    full: bool,
    on_state: OnState,
    on_other: OnOther | None = None,
) -> GameClient:
    """A connected (and, for MQTT, subscribed) client."""
    if endpoint.kind == "sio":
        sio = SioGameClient(endpoint, full=full, on_state=on_state, on_other=on_other)
        await sio.open()
        return sio
    mqtt = MqttGameClient(endpoint, identity, full=full, on_state=on_state, on_other=on_other)
    await mqtt.open(subs)
    return mqtt
