"""Inbound framing: cut a client's byte stream into whole, pre-checked MQTT packets.

amqtt 0.12.1 decodes straight from the socket (``ProtocolHandler._reader_loop``: an
``asyncio.wait_for`` and a chain of awaits per packet). A packet it rejects halfway (a
PUBLISH whose topic holds a wildcard, a remaining length longer than 4 bytes) raises
``MQTTError`` before the rest of the packet is read; the reader loop logs "Message
discarded" and goes on parsing the leftover bytes as new packets: the stream is
desynchronised and the connection lives on as a zombie (payload bytes can even smuggle
packets). It also has no size limit: it buffers whatever remaining length a client announces.

``PacketSplitter`` takes the bytes as they arrive (synchronously, from the transport's
``data_received``), refuses an oversized packet as soon as its length is known (before its
body arrives), checks each whole packet for what must close the connection (packet types
and flags a client may not send, wrong fixed lengths, bad PUBLISH topics), and returns
whole packets only. A violation raises ``ProtocolViolation``; the connection is closed.
"""

from __future__ import annotations

__all__ = ["PacketSplitter", "ProtocolViolation"]

_CONNECT = 1
_PUBLISH = 3
_MAX_LENGTH_BYTES = 4
_CLIENT_PACKETS: dict[int, tuple[int, int | None]] = {
    # packet type: (required fixed-header flags [MQTT-2.2.2-2], fixed remaining length)
    _CONNECT: (0x0, None),
    4: (0x0, 2),  # PUBACK
    5: (0x0, 2),  # PUBREC
    6: (0x2, 2),  # PUBREL
    7: (0x0, 2),  # PUBCOMP
    8: (0x2, None),  # SUBSCRIBE
    10: (0x2, None),  # UNSUBSCRIBE
    12: (0x0, 0),  # PINGREQ
    14: (0x0, 0),  # DISCONNECT
}


def header_problem(first_byte: int, *, first_packet: bool) -> str | None:
    """Why a packet starting with this byte must close the connection, or None."""
    kind, flags = first_byte >> 4, first_byte & 0x0F
    if first_packet != (kind == _CONNECT):
        if first_packet:
            return "first packet is not CONNECT [MQTT-3.1.0-1]"
        return "second CONNECT [MQTT-3.1.0-2]"
    if kind == _PUBLISH:
        return None
    if kind not in _CLIENT_PACKETS:
        return f"packet type {kind} is not one a client may send"
    if flags != _CLIENT_PACKETS[kind][0]:
        return f"invalid flags {flags:#x} for packet type {kind} [MQTT-2.2.2-2]"
    return None


def length_problem(first_byte: int, length: int) -> str | None:
    """Why this remaining length is wrong for the packet type, or None."""
    kind = first_byte >> 4
    expected = _CLIENT_PACKETS[kind][1] if kind in _CLIENT_PACKETS else None
    if expected is not None and length != expected:
        return f"remaining length {length} for packet type {kind} (must be {expected})"
    return None


def publish_problem(first_byte: int, body: bytes) -> str | None:
    """Why this PUBLISH packet must close the connection, or None if amqtt may decode it."""
    if (first_byte >> 1) & 0x03 == 0x03:
        return "PUBLISH with QoS 3 [MQTT-3.3.1-4]"
    if len(body) < 2:
        return "truncated PUBLISH"
    end = 2 + int.from_bytes(body[:2], "big")
    if end > len(body):
        return "PUBLISH topic longer than the packet"
    if (first_byte >> 1) & 0x03 and end + 2 > len(body):
        return "PUBLISH without its packet identifier"
    topic = body[2:end]
    if not topic:
        return "PUBLISH with an empty topic name [MQTT-4.7.3-1]"
    if b"+" in topic or b"#" in topic:
        return "PUBLISH topic name with a wildcard [MQTT-3.3.2-2]"
    if b"\x00" in topic:
        return "PUBLISH topic name with U+0000 [MQTT-1.5.3-2]"
    return None


class ProtocolViolation(Exception):  # noqa: N818 - named after the MQTT term
    """The client broke the protocol; the reason is the message. Close the connection."""


class PacketSplitter:
    """Cuts a byte stream into whole packets ``(first byte, body)``, checking each one.

    The first packet must be a CONNECT and no other may be [MQTT-3.1.0-1, -2]; a packet
    announcing more than ``max_packet_size`` bytes is refused before its body is read.
    """

    __slots__ = ("_buffer", "_checked", "_max_packet_size", "_seen_connect")

    def __init__(self, max_packet_size: int) -> None:
        self._max_packet_size = max_packet_size
        self._buffer = bytearray()
        self._checked = 0  # bytes of the buffer's first packet header already checked
        self._seen_connect = False

    @property
    def idle(self) -> bool:
        """No partial packet waiting for more bytes."""
        return not self._buffer

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        """The packets completed by ``data`` (possibly none). Raises ``ProtocolViolation``."""
        buffer = self._buffer
        if buffer:
            buffer += data
            data = bytes(buffer)
            buffer.clear()
        packets: list[tuple[int, bytes]] = []
        pos, end = 0, len(data)
        while pos < end:
            first = data[pos]
            if self._checked <= pos:
                if problem := header_problem(first, first_packet=not self._seen_connect):
                    raise ProtocolViolation(problem)
                self._seen_connect = True
                self._checked = pos + 1
            length = shift = 0
            at = pos + 1
            while True:
                if at >= end:  # the length field is not complete yet
                    return self._keep(packets, data, pos)
                byte = data[at]
                length |= (byte & 0x7F) << shift
                at += 1
                if not byte & 0x80:
                    break
                shift += 7
                if shift >= 7 * _MAX_LENGTH_BYTES:
                    raise ProtocolViolation("remaining length longer than 4 bytes")
            if self._checked <= at - 1:
                if length > self._max_packet_size:
                    msg = f"packet of {length} bytes exceeds the maximum of {self._max_packet_size}"
                    raise ProtocolViolation(msg)
                if problem := length_problem(first, length):
                    raise ProtocolViolation(problem)
                self._checked = at
            if end - at < length:  # the body is not complete yet
                return self._keep(packets, data, pos)
            body = data[at : at + length]
            if first >> 4 == _PUBLISH and (problem := publish_problem(first, body)):
                raise ProtocolViolation(problem)
            packets.append((first, body))
            pos = at + length
        self._checked = 0
        return packets

    def _keep(
        self, packets: list[tuple[int, bytes]], data: bytes, pos: int
    ) -> list[tuple[int, bytes]]:
        """Keep the incomplete packet starting at ``pos`` for the next ``feed``."""
        self._buffer += data[pos:]
        self._checked -= pos
        return packets
