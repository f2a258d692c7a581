"""MQTT over WebSocket, in process: a byte stream from the web bridge handed to the broker.

The web bridge (which may not import amqtt) accepts the WebSocket, checks its frames and
gives the broker a ``ByteStream``; ``WebSocketGateway.serve`` runs it as a connection of the
broker's ``external`` listener (a ``ByteStream`` is a ``connection.ByteLink``: no amqtt
reader/writer adapters in between), with every limit of a TCP connection (CONNECT timeout,
keep-alive, packet size, queues) and the same batched writes: one ``send`` per loop
iteration with every packet due to the client.

No receive timeout here: a phone may stay idle for its whole keep-alive, which the broker
enforces; amqtt's own aiohttp sample drops idle clients after 0.5 s.
"""

from __future__ import annotations

from typing import Protocol

from hub.broker.frames import FrameConnection, FrameSink
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
        await self._broker.serve_link(stream)

    def open_frames(self, sink: FrameSink) -> FrameConnection:
        """A client whose WebSocket messages the web bridge hands over by plain calls."""
        return self._broker.open_frames(sink)
