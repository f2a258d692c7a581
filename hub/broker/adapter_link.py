"""amqtt's reader/writer adapter pair as a ``ByteLink`` (its ``ws`` and ``external``
listeners, ``Broker.external_connected``).

``receive`` returns a packet's fixed header first and its body after, so the framing can
refuse an oversized packet before its body is read.
"""

from __future__ import annotations

import asyncio
import contextlib

from amqtt.adapters import ReaderAdapter, WriterAdapter

__all__ = ["AdapterLink"]

_MAX_HEADER = 5
_CHUNK = 65_536


class AdapterLink:
    def __init__(self, reader: ReaderAdapter, writer: WriterAdapter, peer: tuple[str, int]) -> None:
        self._reader = reader
        self._writer = writer
        self.peer = peer
        self._body_left = 0

    async def receive(self) -> bytes:
        try:
            if self._body_left:
                data: bytes = await self._reader.read(min(self._body_left, _CHUNK))
                self._body_left -= len(data)
                return data
            header = bytearray(await self._reader.read(1))
            while header and len(header) < _MAX_HEADER + 1:
                byte: bytes = await self._reader.read(1)
                if not byte:
                    return b""
                header += byte
                if not byte[0] & 0x80:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            return b""
        self._body_left = sum((b & 0x7F) << (7 * i) for i, b in enumerate(header[1:5]))
        return bytes(header)

    async def send(self, data: bytes) -> None:
        self._writer.write(data)
        await self._writer.drain()

    async def close(self) -> None:
        with contextlib.suppress(ConnectionError, OSError, TimeoutError):
            await asyncio.wait_for(self._writer.close(), 1.0)
