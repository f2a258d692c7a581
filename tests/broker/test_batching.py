"""The hot path's shape: no task per delivery, one write per client per loop iteration.

Stock amqtt starts a task per delivery (``Broker._run_broadcast``) and writes and drains the
socket per packet; the hub's broker appends to each client's batch and writes the batch
once per event-loop iteration. A WebSocket client (a ``ByteLink``, as the web bridge gives
it) gets the same batching: one ``send`` for everything due to it in that iteration.
"""

from __future__ import annotations

import asyncio
from typing import Any

from tests.broker.conftest import StartBroker
from tests.broker.wire import connect_packet, subscribe_packet

TOPIC = "burst/x"


async def _broadcast_burst(broker: Any, count: int) -> int:
    """Route ``count`` messages in one go; the tasks that started meanwhile."""
    before = asyncio.all_tasks()
    for n in range(count):
        await broker.internal_message_broadcast(TOPIC, f"{n}".encode(), 1)
    return len(asyncio.all_tasks() - before)


def test_deliveries_start_no_tasks(start_hub: StartBroker) -> None:
    broker = start_hub()
    subscribers = [broker.client() for _ in range(20)]
    for n, subscriber in enumerate(subscribers):
        subscriber.connect(f"s{n}")
        subscriber.subscribe((TOPIC, 1))

    assert broker.run(lambda b: _broadcast_burst(b, 50)) == 0  # 1,000 deliveries
    for subscriber in subscribers:
        got = [m.payload for m in subscriber.barrier()]
        assert got == [f"{n}".encode() for n in range(50)]


class MemoryLink:
    """A client connection held in memory, as the web bridge's WebSocket stream is."""

    peer = ("memory", 1)

    def __init__(self) -> None:
        self.inbound: asyncio.Queue[bytes] = asyncio.Queue()
        self.sends: list[bytes] = []
        self.closed = False

    async def receive(self) -> bytes:
        return await self.inbound.get()

    async def send(self, data: bytes) -> None:
        self.sends.append(data)

    async def close(self) -> None:
        self.closed = True


async def _over_a_link(broker: Any) -> tuple[list[bytes], bool]:
    link = MemoryLink()
    served = asyncio.ensure_future(broker.serve_link("websocket", link))
    link.inbound.put_nowait(connect_packet("linked") + subscribe_packet(1, (TOPIC, 0)))
    async with asyncio.timeout(3):
        while len(b"".join(link.sends)) < 4 + 5:  # noqa: ASYNC110 - CONNACK, SUBACK
            await asyncio.sleep(0.01)
    link.sends.clear()
    for n in range(10):  # one loop iteration
        await broker.internal_message_broadcast(TOPIC, f"{n}".encode(), 0)
    async with asyncio.timeout(3):
        while not link.sends:  # noqa: ASYNC110 - the broker's flush, one iteration later
            await asyncio.sleep(0.001)
    await asyncio.sleep(0.05)
    sends = list(link.sends)
    link.inbound.put_nowait(b"\xe0\x00")  # DISCONNECT
    await asyncio.wait_for(served, 3)
    return sends, link.closed


def test_a_link_gets_one_send_per_loop_iteration(start_hub: StartBroker) -> None:
    broker = start_hub()
    sends, closed = broker.run(_over_a_link)
    assert len(sends) == 1  # ten PUBLISH packets, one send
    assert sends[0].count(b"\x30\x0a\x00\x07burst/x") == 10
    assert closed


class OrderedLink(MemoryLink):
    """A ``MemoryLink`` that records, in a list shared by several, whose send came when."""

    def __init__(self, name: str, order: list[str]) -> None:
        super().__init__()
        self.name = name
        self.order = order

    async def send(self, data: bytes) -> None:
        self.order.append(self.name)
        await super().send(data)


async def _reply_among_broadcasts(broker: Any) -> list[str]:
    order: list[str] = []
    links = [OrderedLink(f"c{n}", order) for n in range(5)]
    served = []
    for link in links:  # in this order: a broadcast's copies are written in this order too
        served.append(asyncio.ensure_future(broker.serve_link("websocket", link)))
        link.inbound.put_nowait(
            connect_packet(link.name) + subscribe_packet(1, (TOPIC, 0), (f"reply/{link.name}", 0))
        )
        async with asyncio.timeout(3):
            while len(b"".join(link.sends)) < 4 + 6:  # noqa: ASYNC110 - CONNACK, SUBACK
                await asyncio.sleep(0.01)
    order.clear()
    await broker.internal_message_broadcast(TOPIC, b"state", 0)  # to all five
    await broker.internal_message_broadcast("reply/c3", b"reply", 0)  # to c3 alone
    async with asyncio.timeout(3):
        while len(order) < len(links):  # noqa: ASYNC110 - the broker's flush, next iteration
            await asyncio.sleep(0.001)
    for link in links:
        link.inbound.put_nowait(b"\xe0\x00")  # DISCONNECT
    await asyncio.wait_for(asyncio.gather(*served), 3)
    return order


def test_a_client_with_a_reply_is_written_before_a_broadcasts_other_copies(
    start_hub: StartBroker,
) -> None:
    """A command's sender gets the state and its reply first, the spectators after."""
    broker = start_hub()
    order = broker.run(_reply_among_broadcasts)
    assert order == ["c3", "c0", "c1", "c2", "c4"]
