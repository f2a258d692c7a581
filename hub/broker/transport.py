"""The state service's in-process link to the embedded broker (implements hub.transport)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

from amqtt.session import Session

from hub.broker.conformance import HubBroker
from hub.protocol import topic_matches
from hub.transport import Inbound, Inbox

__all__ = ["EmbeddedTransport"]


class EmbeddedTransport:
    """Publishes straight into the broker and taps what it routes, with the publisher's id.

    No MQTT encoding, no loopback socket: commands arrive with the session's identity,
    so the service can refuse a client publishing on another client's command topic.
    """

    def __init__(self, broker: HubBroker) -> None:
        self._broker = broker
        self._filters: list[str] = []
        self._inbox = Inbox()
        broker.message_tap = self._tap

    def _tap(self, topic: str, payload: bytes, session: Session | None) -> None:
        if session is None:  # the broker's own messages, i.e. ours
            return
        if any(topic_matches(topic, f) for f in self._filters):
            sender = session.username or session.client_id
            self._inbox.put(Inbound(topic=topic, payload=payload, sender=sender))

    async def subscribe(self, *filters: str) -> None:
        self._filters.extend(filters)
        for topic, message in list(self._broker.retained_messages.items()):
            if any(topic_matches(topic, f) for f in filters):
                self._inbox.put(Inbound(topic=topic, payload=bytes(message.data), retained=True))

    async def publish(
        self, topic: str, payload: bytes, *, retain: bool = False, qos: int = 1
    ) -> None:
        if retain:
            await self._broker.retain_message(None, topic, payload, qos)
        if payload or not retain:
            await self._broker.internal_message_broadcast(topic, payload, qos)

    def messages(self) -> AsyncIterator[Inbound]:
        return self._inbox.messages()

    def on_reconnect(self, callback: Callable[[], Awaitable[None]]) -> None:
        """In-process: the link never drops, so there is nothing to call back."""

    def close(self) -> None:
        self._broker.message_tap = None
        self._inbox.close()
