"""A ``MqttGateway`` for a bridge that runs beside a broker it does not embed: each
WebSocket becomes one TCP connection to the broker, bytes copied both ways.

The broker then sees every phone as coming from the bridge's address (its login throttle
and logs cannot tell phones apart); the embedded hub hands streams over in process instead
(``hub.broker.websocket``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket

from web_bridge.ports import ByteStream

__all__ = ["TcpProxyGateway"]

_LOGGER = logging.getLogger(__name__)
_READ_CHUNK = 65536


class TcpProxyGateway:
    def __init__(self, host: str, port: int, *, max_packet_size: int = 65536) -> None:
        self._host = host
        self._port = port
        self._max_frame_bytes = max_packet_size + 5

    @property
    def max_frame_bytes(self) -> int:
        return self._max_frame_bytes

    async def serve(self, stream: ByteStream) -> None:
        try:
            reader, writer = await asyncio.open_connection(self._host, self._port)
        except OSError as exc:
            _LOGGER.warning("cannot reach the broker at %s:%d: %s", self._host, self._port, exc)
            await stream.close()
            return
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        async def upstream() -> None:
            while data := await stream.receive():
                writer.write(data)
                await writer.drain()

        async def downstream() -> None:
            while data := await reader.read(_READ_CHUNK):
                await stream.send(data)

        tasks = [asyncio.create_task(upstream()), asyncio.create_task(downstream())]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
            await stream.close()
