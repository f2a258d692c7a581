"""How the state service reaches the broker, whichever broker it is.

``Transport`` is implemented by the embedded broker (``hub.broker.EmbeddedTransport``,
in-process, knows each publisher's identity) and by an MQTT client link to an external
broker (``hub.link.MqttTransport``, where the broker's ACL vouches for the topic).
The state service depends only on this Protocol.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

__all__ = ["Inbound", "Inbox", "Transport", "TransportError"]


class TransportError(Exception):
    """The broker could not be reached or refused an operation."""


@dataclass(frozen=True, slots=True)
class Inbound:
    """One message the service subscribed to.

    ``sender`` is the publisher's authenticated identity where the transport knows it
    (the embedded broker); ``None`` where the broker's ACL vouches for the topic instead.
    """

    topic: str
    payload: bytes
    sender: str | None = None
    retained: bool = False
    received_at: float = field(default_factory=time.monotonic)
    """``time.monotonic()`` when the transport took the message off the wire."""


class Transport(Protocol):
    async def subscribe(self, *filters: str) -> None:
        """Receive messages matching ``filters``, starting with retained ones."""

    async def publish(
        self, topic: str, payload: bytes, *, retain: bool = False, qos: int = 1
    ) -> None:
        """Publish; an empty retained payload clears the retained message."""

    def messages(self) -> AsyncIterator[Inbound]:
        """Inbound messages in arrival order, until the transport closes."""
        ...

    def on_reconnect(self, callback: Callable[[], Awaitable[None]]) -> None:
        """Call ``callback`` after every re-connection to the broker (not the first)."""


class Inbox:
    """The inbound queue a transport fills and ``Transport.messages`` drains, until closed."""

    _CLOSED = object()

    def __init__(self) -> None:
        self._queue: asyncio.Queue[Inbound | object] = asyncio.Queue()

    def put(self, message: Inbound) -> None:
        self._queue.put_nowait(message)

    def close(self) -> None:
        self._queue.put_nowait(self._CLOSED)

    async def messages(self) -> AsyncIterator[Inbound]:
        while True:
            item = await self._queue.get()
            if item is self._CLOSED:
                return
            assert isinstance(item, Inbound)
            yield item
