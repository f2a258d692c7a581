"""MQTT over WebSocket, in process: a byte stream from the web bridge handed to the broker.

The web bridge (which may not import amqtt) accepts the WebSocket, checks its frames and
gives the broker a ``ByteStream``; ``WebSocketGateway.serve`` wraps it in amqtt's
reader/writer adapters and runs it as a connection of the broker's ``external`` listener,
with every limit of a TCP connection (CONNECT timeout, keep-alive, packet size, queues).

No receive timeout here: a phone may stay idle for its whole keep-alive, which the broker
enforces; amqtt's own aiohttp sample drops idle clients after 0.5 s.
"""

from __future__ import annotations

import ssl
from typing import Protocol

from amqtt.adapters import ReaderAdapter, WriterAdapter

from hub.broker.server import EmbeddedBroker

__all__ = ["ByteStream", "WebSocketGateway"]

_MAX_FIXED_HEADER = 5


class ByteStream(Protocol):
    """One client's MQTT byte stream (the web bridge's ``WebSocketStream``)."""

    @property
    def peer(self) -> tuple[str, int]: ...

    async def receive(self) -> bytes:
        """The next chunk of bytes; b"" once the client is gone."""
        ...

    async def send(self, data: bytes) -> None:
        """Send bytes; raises ConnectionError once the client is gone."""

    async def close(self) -> None: ...


class _StreamReader(ReaderAdapter):  # type: ignore[misc]  # amqtt ships no type information
    def __init__(self, stream: ByteStream) -> None:
        self._stream = stream
        self._buffer = bytearray()
        self._eof = False

    async def read(self, n: int = -1) -> bytes:
        """``n`` bytes (any available if n < 0); fewer only at the end of the stream."""
        while not self._eof and (len(self._buffer) < n if n > 0 else not self._buffer):
            data = await self._stream.receive()
            if not data:
                self._eof = True
                break
            self._buffer.extend(data)
        if n < 0 or len(self._buffer) < n:
            out = bytes(self._buffer)
            self._buffer.clear()
            return out
        out = bytes(self._buffer[:n])
        del self._buffer[:n]
        return out

    def feed_eof(self) -> None:
        self._eof = True


class _StreamWriter(WriterAdapter):  # type: ignore[misc]
    def __init__(self, stream: ByteStream) -> None:
        self._stream = stream
        self._buffer = bytearray()

    def write(self, data: bytes) -> None:
        self._buffer.extend(data)

    async def drain(self) -> None:
        if not self._buffer:
            return
        data = bytes(self._buffer)
        self._buffer.clear()
        try:
            await self._stream.send(data)
        except ConnectionError as exc:  # amqtt handles BrokenPipeError as a disconnect
            raise BrokenPipeError(str(exc)) from exc

    def get_peer_info(self) -> tuple[str, int] | None:
        return self._stream.peer

    def get_ssl_info(self) -> ssl.SSLObject | None:
        return None

    async def close(self) -> None:
        await self._stream.close()


class WebSocketGateway:
    """Implements the web bridge's ``MqttGateway`` for the embedded broker."""

    def __init__(self, broker: EmbeddedBroker) -> None:
        self._broker = broker

    @property
    def max_frame_bytes(self) -> int:
        """The largest WebSocket frame worth reading: one packet of the maximum size."""
        return self._broker.max_packet_size + _MAX_FIXED_HEADER

    async def serve(self, stream: ByteStream) -> None:
        """Run one client until it disconnects."""
        await self._broker.serve_external(_StreamReader(stream), _StreamWriter(stream))
