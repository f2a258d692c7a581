"""One client connection with the hub's limits enforced around amqtt's stream adapters."""

from __future__ import annotations

import asyncio
import logging
import ssl
from typing import Any

from amqtt.adapters import ReaderAdapter, StreamWriterAdapter, WebSocketsWriter, WriterAdapter

from hub.broker.framing import FramedReader
from hub.broker.keepalive import LivenessTimer
from hub.broker.limits import Limits

__all__ = ["GuardedConnection", "GuardedWriter", "connection_of"]

_LOGGER = logging.getLogger(__name__)
_CLOSE_GRACE = 1.0
"""Seconds a closing client gets to take its last packets before the socket is cut."""


def _transport_of(writer: WriterAdapter) -> asyncio.Transport | None:
    """The socket transport under one of amqtt's writer adapters (None for external ones)."""
    if isinstance(writer, StreamWriterAdapter):
        transport: asyncio.Transport = writer._writer.transport
        return transport
    if isinstance(writer, WebSocketsWriter):
        ws_transport: asyncio.Transport = writer._protocol.transport
        return ws_transport
    return None


class GuardedConnection:
    """Wraps a connection's reader and writer before amqtt sees them.

    Enforces the CONNECT timeout and keep-alive (``LivenessTimer``), the maximum packet size
    and packet sanity (``FramedReader``), and the per-client outgoing queue bound; any
    violation aborts the socket, which amqtt then handles like a dropped connection
    (will message, session cleanup).
    """

    def __init__(self, reader: ReaderAdapter, writer: WriterAdapter, limits: Limits) -> None:
        loop = asyncio.get_running_loop()
        self._inner_writer = writer
        self.peer = writer.get_peer_info()
        self.reader = FramedReader(
            reader, max_packet_size=limits.max_packet_size, clock=loop.time, violation=self.abort
        )
        self.writer = GuardedWriter(writer, self)
        self._timer = LivenessTimer(
            connect_timeout=limits.connect_timeout,
            last_activity=lambda: self.reader.last_packet_at,
            expire=self._expire,
        )
        self._max_queued = limits.max_queued_messages
        self._queued = 0
        self._closing: asyncio.Future[Any] | None = None
        self.aborted = False

    def connected(self, keep_alive: int) -> None:
        """The CONNECT was read: enforce its keep-alive from now on."""
        self._timer.keep_alive(keep_alive)

    def reserve_outgoing(self) -> bool:
        """Count one more pending delivery; False (and the connection is closed) past the bound.

        A client that stops reading stalls amqtt's writes, and every further message for it
        becomes another pending task: without a bound the broker's memory grows forever.
        """
        if self.aborted:
            return False
        if self._queued >= self._max_queued:
            self.abort(f"more than {self._max_queued} outgoing messages pending (not reading)")
            return False
        self._queued += 1
        return True

    def release_outgoing(self) -> None:
        self._queued -= 1

    def abort(self, reason: str) -> None:
        """Close the connection now, without flushing: the client broke a rule."""
        if not self.aborted:
            _LOGGER.warning("closing the connection of %s: %s", self.peer, reason)
            self.drop()

    def _expire(self, reason: str) -> None:
        if not self.aborted:  # a dead client, not a broken one
            _LOGGER.info("closing the connection of %s: %s", self.peer, reason)
            self.drop()

    def drop(self) -> None:
        """Abort the socket quietly (it is dead or being closed anyway)."""
        if self.aborted:
            return
        self.aborted = True
        self._timer.cancel()
        transport = _transport_of(self._inner_writer)
        if transport is not None:
            transport.abort()
        else:  # an external adapter: closing its writer is all we can do
            self._closing = asyncio.ensure_future(self._inner_writer.close())

    async def close(self) -> None:
        """Release everything; call once the broker is done with the connection."""
        self._timer.cancel()
        self.reader.close()
        await self.writer.close()
        if self._closing is not None:
            await asyncio.gather(self._closing, return_exceptions=True)


class GuardedWriter(WriterAdapter):  # type: ignore[misc]  # amqtt ships no type information
    """Delegates to amqtt's writer adapter; writes nothing once the connection is aborted."""

    def __init__(self, inner: WriterAdapter, connection: GuardedConnection) -> None:
        self._inner = inner
        self.connection = connection
        self._closed = False

    def write(self, data: bytes) -> None:
        if not self.connection.aborted:
            self._inner.write(data)

    async def drain(self) -> None:
        if self.connection.aborted:
            raise ConnectionResetError
        await self._inner.drain()

    def get_peer_info(self) -> tuple[str, int] | None:
        peer: tuple[str, int] | None = self._inner.get_peer_info()
        return peer

    def get_ssl_info(self) -> ssl.SSLObject | None:
        info: ssl.SSLObject | None = self._inner.get_ssl_info()
        return info

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self.connection.aborted:
            return
        try:
            # amqtt's close drains first: it would wait forever on a client that stopped reading
            await asyncio.wait_for(self._inner.close(), _CLOSE_GRACE)
        except (TimeoutError, OSError):
            self.connection.drop()


def connection_of(handler: Any) -> GuardedConnection | None:
    """The connection behind an amqtt protocol handler, if the hub wrapped it."""
    writer = getattr(handler, "writer", None)
    return writer.connection if isinstance(writer, GuardedWriter) else None
