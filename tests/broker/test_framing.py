"""FramedReader on its own: it must not lose bytes when amqtt cancels a read.

amqtt wraps every header read in ``asyncio.wait_for(..., keep-alive)``; the hub's reader
reads whole packets there, so a slow packet can be cancelled halfway. amqtt's own
WebSocketsReader drops the bytes it had buffered when that happens.
"""

from __future__ import annotations

import asyncio

import pytest
from amqtt.adapters import WebSocketsReader

from hub.broker.framing import FramedReader
from tests.broker.wire import connect_packet


class _Frames:
    """The part of a websockets connection amqtt's WebSocketsReader uses: ``recv()``."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[bytes] = asyncio.Queue()

    async def recv(self) -> bytes:
        return await self.queue.get()


async def _cancelled_halfway() -> None:
    frames = _Frames()
    violations: list[str] = []
    loop = asyncio.get_running_loop()
    reader = FramedReader(
        WebSocketsReader(frames),
        max_packet_size=1024,
        clock=loop.time,
        violation=violations.append,
    )
    connect = connect_packet("slow", keepalive=30)

    await frames.queue.put(connect[:3])  # fixed header and one byte of the body
    with pytest.raises(TimeoutError):  # what amqtt's keep-alive wait_for does
        await asyncio.wait_for(reader.read(1), 0.05)
    await frames.queue.put(connect[3:])
    head = await asyncio.wait_for(reader.read(1), 1.0)
    rest = await asyncio.wait_for(reader.read(len(connect) - 1), 1.0)

    assert head + rest == connect
    assert violations == []
    reader.close()


def test_packet_survives_a_cancelled_read() -> None:
    asyncio.run(_cancelled_halfway())
