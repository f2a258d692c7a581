"""A message encoded once for all of its deliveries.

amqtt builds an ``OutgoingApplicationMessage`` and a ``PublishPacket`` and serialises it for
every subscriber (``ApplicationMessage.build_publish_packet`` -> ``to_bytes``): the topic is
re-encoded and the payload copied N times for N subscribers. Here the bytes of a QoS 0
delivery are made once per message, and a QoS 1/2 delivery only splices its packet id
between a shared head and the payload.
"""

from __future__ import annotations

from hub.broker.packets import publish, remaining_length

__all__ = ["EncodedPublish"]


class EncodedPublish:
    """The PUBLISH packets of one routed message (RETAIN 0, DUP 0 unless asked)."""

    __slots__ = ("_heads", "_qos0", "_topic_bytes", "payload", "topic")

    def __init__(self, topic: str, payload: bytes) -> None:
        self.topic = topic
        self.payload = payload
        self._topic_bytes = topic.encode("utf-8")
        self._qos0: bytes | None = None
        self._heads: dict[int, bytes] = {}

    def packet(self, qos: int, pid: int = 0) -> bytes:
        """The PUBLISH for one delivery at ``qos`` (``pid`` for QoS 1 and 2)."""
        if qos == 0:
            packet = self._qos0
            if packet is None:
                packet = self._qos0 = publish(self._topic_bytes, self.payload, 0)
            return packet
        head = self._heads.get(qos)
        if head is None:
            topic = self._topic_bytes
            size = 2 + len(topic) + 2 + len(self.payload)
            head = bytes((0x30 | (qos << 1),)) + remaining_length(size)
            head += len(topic).to_bytes(2, "big") + topic
            self._heads[qos] = head
        return b"".join((head, pid.to_bytes(2, "big"), self.payload))

    def variant(self, qos: int, pid: int = 0, *, retain: bool = False, dup: bool = False) -> bytes:
        """A PUBLISH with RETAIN or DUP set (retained replays, redeliveries): rare, not cached."""
        return publish(self._topic_bytes, self.payload, qos, pid, retain=retain, dup=dup)
