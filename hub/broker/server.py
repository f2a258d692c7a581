"""The embedded amqtt broker as an async context manager."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self

from amqtt.adapters import ReaderAdapter, WriterAdapter
from amqtt.errors import BrokerError as AmqttBrokerError

from hub.auth import Identity
from hub.broker.auth import IDENTITY
from hub.broker.conformance import HubBroker
from hub.broker.connection import ByteLink
from hub.broker.errors import BrokerError
from hub.broker.frames import FrameConnection, FrameSink
from hub.broker.limits import (
    DEFAULT_ACK_TIMEOUT,
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_MAX_CONNECTIONS,
    DEFAULT_MAX_PACKET_SIZE,
    DEFAULT_MAX_QUEUED_MESSAGES,
    DEFAULT_MAX_UNAUTHENTICATED,
    Limits,
)
from hub.broker.transport import EmbeddedTransport

__all__ = ["BrokerOptions", "EmbeddedBroker"]

_LOGGER = logging.getLogger(__name__)
_TCP_LISTENER = "default"
_WS_LISTENER = "websocket"


@dataclass(frozen=True, slots=True)
class BrokerOptions:
    bind: str = "0.0.0.0"  # noqa: S104 - the table's phones and Pi are on the LAN
    port: int = 1883
    """0 picks a free port; ``EmbeddedBroker.port`` tells which."""
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT
    """Seconds a new connection may take to send its CONNECT."""
    max_packet_size: int = DEFAULT_MAX_PACKET_SIZE
    """Largest inbound packet (remaining length, bytes); a bigger one closes the connection."""
    max_queued_messages: int = DEFAULT_MAX_QUEUED_MESSAGES
    """Per client: packets waiting while it does not read before it is disconnected, QoS 1/2
    deliveries it has not acknowledged (more are dropped until it catches up), and QoS 1/2
    messages kept for an offline persistent session (more are dropped)."""
    ack_timeout: float = DEFAULT_ACK_TIMEOUT
    """Seconds without any acknowledgement after which a client with ``max_queued_messages``
    deliveries unacknowledged is disconnected."""
    max_connections: int = DEFAULT_MAX_CONNECTIONS
    """Logged-in connections over all listeners; more get CONNACK 0x03 (server unavailable)."""
    max_unauthenticated: int = DEFAULT_MAX_UNAUTHENTICATED
    """Connections not logged in yet; more are closed at once."""
    session_expiry: int = 86_400
    """Seconds a disconnected persistent session (clean session 0) is kept; amqtt's default
    keeps them forever (Yakifo/amqtt#14, #247)."""
    auth: Mapping[str, Mapping[str, Any]] | None = None
    """Authentication/ACL plugins, dotted class path -> config; None admits everyone
    (``OpenAuthPlugin``, for conformance tests only)."""
    extra_plugins: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    """More amqtt plugins, dotted class path -> config (e.g. a topic ACL plugin)."""


class EmbeddedBroker:
    """Runs amqtt (with the hub's fixes) in the current event loop.

    ``async with EmbeddedBroker(options) as broker:`` listens on ``broker.port``;
    ``broker.transport`` is the state service's in-process link to it.
    """

    def __init__(self, options: BrokerOptions) -> None:
        self._options = options
        self._broker: HubBroker | None = None
        self._transport: EmbeddedTransport | None = None
        self._port: int | None = None

    def _config(self) -> dict[str, Any]:
        return {
            "listeners": {
                _TCP_LISTENER: {
                    "type": "tcp",
                    "bind": f"{self._options.bind}:{self._options.port}",
                },
                _WS_LISTENER: {"type": "external"},
            },
            "session_expiry_interval": self._options.session_expiry,
            "plugins": {
                **(
                    {path: dict(config) for path, config in self._options.auth.items()}
                    if self._options.auth is not None
                    else {"hub.broker.auth.OpenAuthPlugin": {}}
                ),
                **{path: dict(config) for path, config in self._options.extra_plugins.items()},
            },
        }

    @property
    def port(self) -> int:
        if self._port is None:
            msg = "the broker is not running"
            raise BrokerError(msg)
        return self._port

    @property
    def max_packet_size(self) -> int:
        return self._options.max_packet_size

    @property
    def running(self) -> bool:
        return self._broker is not None

    def clients_by_role(self) -> dict[str, int]:
        """Connected clients by role (``unknown``: connected, not yet authenticated)."""
        if self._broker is None:
            return {}
        counts: Counter[str] = Counter()
        for session, _handler in self._broker._sessions.values():
            if session.transitions.state == "connected":
                identity = session.attributes.get(IDENTITY)
                counts[identity.role.value if isinstance(identity, Identity) else "unknown"] += 1
        return dict(counts)

    def end_client(self, client_id: str, reason: str) -> None:
        """Close the connection of ``client_id`` and forget its session (thread-safe: a
        ``SessionStore`` listener may call it from any thread)."""
        broker = self._broker
        if broker is not None:
            broker._loop.call_soon_threadsafe(broker.end_client, client_id, reason)

    async def serve_external(self, reader: ReaderAdapter, writer: WriterAdapter) -> None:
        """Run one connection that arrived elsewhere, given as amqtt's reader/writer
        adapters, as a client of the ``websocket`` listener, until it disconnects."""
        if self._broker is None:
            msg = "the broker is not running"
            raise BrokerError(msg)
        await self._broker.external_connected(reader, writer, _WS_LISTENER)

    async def serve_link(self, link: ByteLink) -> None:
        """Run one connection that arrived elsewhere (the web bridge's WebSocket) as a
        client of the ``websocket`` listener, until it disconnects."""
        if self._broker is None:
            msg = "the broker is not running"
            raise BrokerError(msg)
        await self._broker.serve_link(_WS_LISTENER, link)

    def open_frames(self, sink: FrameSink) -> FrameConnection:
        """A connection of the ``websocket`` listener whose WebSocket the caller frames
        (the web bridge's lean ``/mqtt``); it runs until ``lost`` or the broker closes it."""
        if self._broker is None:
            msg = "the broker is not running"
            raise BrokerError(msg)
        return self._broker.open_frames(_WS_LISTENER, sink)

    @property
    def transport(self) -> EmbeddedTransport:
        if self._transport is None:
            msg = "the broker is not running"
            raise BrokerError(msg)
        return self._transport

    async def __aenter__(self) -> Self:
        options = self._options
        limits = Limits(
            connect_timeout=options.connect_timeout,
            max_packet_size=options.max_packet_size,
            max_queued_messages=options.max_queued_messages,
            max_connections=options.max_connections,
            max_unauthenticated=options.max_unauthenticated,
            ack_timeout=options.ack_timeout,
        )
        broker = HubBroker(self._config(), limits=limits)
        try:
            await broker.start()
        except AmqttBrokerError as exc:
            msg = (
                f"cannot start the MQTT broker on {self._options.bind}:{self._options.port}: {exc}"
            )
            raise BrokerError(msg) from exc
        self._broker = broker
        server: asyncio.Server = broker._servers[_TCP_LISTENER].instance
        self._port = int(server.sockets[0].getsockname()[1])
        self._transport = EmbeddedTransport(broker)
        _LOGGER.info("MQTT broker listening on %s:%d", self._options.bind, self._port)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._transport is not None:
            self._transport.close()
        if self._broker is not None:
            await _flush(self._broker)
            await self._broker.shutdown()
        self._broker = None
        self._transport = None
        self._port = None


async def _flush(broker: HubBroker) -> None:
    """Let queued messages (the service's last ``offline`` status) reach their subscribers,
    for up to a second, before the connections close."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(1.0):
            while broker.output_pending:  # noqa: ASYNC110 - written by the event loop
                await asyncio.sleep(0.01)
