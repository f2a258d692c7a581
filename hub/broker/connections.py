"""Connection-level fixes: limits, keep-alive, and closing connections amqtt leaves as zombies."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from amqtt.adapters import ReaderAdapter, WriterAdapter
from amqtt.broker import Broker
from amqtt.mqtt.protocol.broker_handler import BrokerProtocolHandler
from amqtt.session import Session

from hub.broker.guard import GuardedConnection, GuardedWriter, connection_of
from hub.broker.limits import Limits

__all__ = ["GuardedConnectionsBroker"]

_LOGGER = logging.getLogger(__name__)
_AMQTT_ID_PREFIX = "amqtt/"
ASSIGNED_CLIENT_ID = "hub.assigned_client_id"
"""Set on a session whose client sent an empty client id (MQTT-3.1.3-6)."""
_CONNACK_SERVER_UNAVAILABLE = b"\x20\x02\x00\x03"


class GuardedConnectionsBroker(Broker):  # type: ignore[misc]  # amqtt ships no type information
    """Wraps every connection (TCP, WebSocket, external) in a ``GuardedConnection``."""

    limits: Limits

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._connections: set[GuardedConnection] = set()  # refused ones included
        self._admitted = 0

    async def _client_connected(
        self, listener_name: str, reader: ReaderAdapter, writer: WriterAdapter
    ) -> None:
        # The common entry of all listeners. amqtt's own ``max_connections`` is a semaphore:
        # extra clients are accepted and then wait without a CONNACK; refuse them instead.
        connection = GuardedConnection(reader, writer, self.limits)
        self._connections.add(connection)
        try:
            if self._admitted >= self.limits.max_connections:
                await self._refuse(connection)
                return
            self._admitted += 1
            try:
                await super()._client_connected(listener_name, connection.reader, connection.writer)
            except OSError as exc:  # e.g. the socket died while amqtt wrote the CONNACK
                _LOGGER.info("connection of %s lost: %r", connection.peer, exc)
            finally:
                self._admitted -= 1
        finally:
            # amqtt does not close the socket when the first packet is missing or broken
            self._connections.discard(connection)
            await connection.close()

    async def _refuse(self, connection: GuardedConnection) -> None:
        _LOGGER.warning(
            "refusing a connection from %s: %d connections open (max_connections)",
            connection.peer,
            self._admitted,
        )
        # read the CONNECT (bounded by the CONNECT timeout and the packet size limit) so
        # the client learns why: CONNACK 0x03 "server unavailable"
        if await connection.reader.read(1):
            connection.writer.write(_CONNACK_SERVER_UNAVAILABLE)
            with contextlib.suppress(ConnectionError):
                await connection.writer.drain()

    async def _initialize_client_session(
        self, reader: ReaderAdapter, writer: WriterAdapter, remote_address: str, remote_port: int
    ) -> tuple[BrokerProtocolHandler, Session]:
        handler, session = await super()._initialize_client_session(
            reader, writer, remote_address, remote_port
        )
        if isinstance(writer, GuardedWriter):
            # Yakifo/amqtt#308: amqtt reads the keep-alive but never enforces it
            writer.connection.connected(session.keep_alive)
        if session.clean_session and str(session.client_id).startswith(_AMQTT_ID_PREFIX):
            # the client sent no id and amqtt made one up (amqtt.utils.gen_client_id)
            session.attributes[ASSIGNED_CLIENT_ID] = True
        return handler, session

    async def _handle_message_delivery(
        self,
        client_session: Session,
        handler: BrokerProtocolHandler,
        wait_deliver: asyncio.Future[Any],
    ) -> bool:
        if await super()._handle_message_delivery(client_session, handler, wait_deliver):
            return True
        # amqtt refuses the PUBLISH (a topic starting with "$"; empty and wildcard topics
        # never get here, FramedReader closes on those) and leaves the client's message
        # loop, but not the connection: the client stays "connected" and ignored (zombie).
        # Abort the socket and keep the loop so amqtt's disconnect path runs (will, cleanup).
        connection = connection_of(handler)
        if connection is None:
            return False
        connection.abort("PUBLISH to a topic clients may not use")
        return True

    async def shutdown(self) -> None:
        await super().shutdown()
        for connection in list(self._connections):  # e.g. still waiting for a CONNECT
            connection.drop()
