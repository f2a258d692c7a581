"""Inbound framing: hand amqtt one whole, pre-checked MQTT packet at a time.

amqtt 0.12.1 decodes straight from the socket. A packet it rejects halfway (a PUBLISH whose
topic holds a wildcard, a remaining length longer than 4 bytes) raises ``MQTTError`` before
the rest of the packet is read; the reader loop logs "Message discarded" and goes on parsing
the leftover bytes as new packets: the stream is desynchronised and the connection lives on
as a zombie (payload bytes can even smuggle packets). It also has no size limit: it buffers
whatever remaining length a client announces.

``FramedReader`` reads the fixed header itself, refuses an oversized packet before its body
is read, reads the whole packet, checks what amqtt would choke on or misparse (packet types
and flags a client may not send, wrong fixed lengths, bad PUBLISH topics), and only then lets
amqtt decode it from memory. A violation closes the connection (through ``violation``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from amqtt.adapters import ReaderAdapter, StreamReaderAdapter

__all__ = ["FramedReader"]

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
    topic = body[2:end]
    if not topic:
        return "PUBLISH with an empty topic name [MQTT-4.7.3-1]"
    if b"+" in topic or b"#" in topic:
        return "PUBLISH topic name with a wildcard [MQTT-3.3.2-2]"
    if b"\x00" in topic:
        return "PUBLISH topic name with U+0000 [MQTT-1.5.3-2]"
    return None


def _retrieve(future: asyncio.Future[bytes]) -> None:
    """Mark a read's outcome as seen: nobody may await it once the connection is gone."""
    if not future.cancelled():
        future.exception()


class FramedReader(ReaderAdapter):  # type: ignore[misc]  # amqtt ships no type information
    """A ``ReaderAdapter`` serving amqtt complete packets that passed the checks above.

    Cancellation-safe: amqtt wraps its header reads (here: whole-packet reads) in
    ``asyncio.wait_for(..., keep-alive)``. A partly read fixed header is kept in ``self``
    and the next ``read`` resumes it. asyncio's StreamReader loses nothing when a read is
    cancelled; other adapters may (amqtt's WebSocketsReader drops what it had buffered), so
    their reads run as a shielded task that the next ``read`` awaits again.
    """

    def __init__(
        self,
        inner: ReaderAdapter,
        *,
        max_packet_size: int,
        clock: Callable[[], float],
        violation: Callable[[str], None],
    ) -> None:
        self._inner = inner
        self._shielded = not isinstance(inner, StreamReaderAdapter)
        self._pending: asyncio.Future[bytes] | None = None
        self._max_packet_size = max_packet_size
        self._clock = clock
        self._violation = violation
        self._packet = b""
        self._pos = 0
        self._header = bytearray()
        self._length: int | None = None
        self._seen_connect = False
        self._closed = False
        self.last_packet_at = clock()
        """``clock()`` when the last complete packet arrived (or when the reader was made)."""

    async def read(self, n: int = -1) -> bytes:
        if n == 0:
            return b""
        if self._pos == len(self._packet) and not await self._next_packet():
            return b""
        available = len(self._packet) - self._pos
        if n < 0:
            n = available
        elif n > available:
            # A length field inside the packet points past its end: amqtt would read on
            # into the next packet.
            self._fail("malformed packet: a field overruns the remaining length")
            return b""
        start = self._pos
        self._pos += n
        return self._packet[start : self._pos]

    def feed_eof(self) -> None:
        self._inner.feed_eof()

    async def _next_packet(self) -> bool:
        """Read one whole packet into ``self._packet``; False at EOF or on a violation."""
        if self._closed:
            return False
        while self._length is None:
            byte = await self._read_inner(1)
            if not byte:
                return False
            self._header += byte
            if len(self._header) == 1:
                if problem := header_problem(byte[0], first_packet=not self._seen_connect):
                    return self._fail(problem)
                continue
            if byte[0] & 0x80:
                if len(self._header) > _MAX_LENGTH_BYTES:
                    return self._fail("remaining length longer than 4 bytes")
                continue
            length = sum((b & 0x7F) << (7 * i) for i, b in enumerate(self._header[1:]))
            if length > self._max_packet_size:
                return self._fail(
                    f"packet of {length} bytes exceeds the maximum of {self._max_packet_size}"
                )
            if problem := length_problem(self._header[0], length):
                return self._fail(problem)
            self._length = length
        body = await self._read_inner(self._length) if self._length else b""
        if len(body) < self._length:
            return False
        first = self._header[0]
        if first >> 4 == _PUBLISH and (problem := publish_problem(first, body)):
            return self._fail(problem)
        self._packet = bytes(self._header) + body
        self._pos = 0
        self._header.clear()
        self._length = None
        self._seen_connect = True
        self.last_packet_at = self._clock()
        return True

    def close(self) -> None:
        """Stop a read still pending in the inner adapter."""
        if self._pending is not None:
            self._pending.cancel()
            self._pending = None

    async def _read_inner(self, n: int) -> bytes:
        """``n`` bytes from the inner adapter; b"" at EOF. Resumable after cancellation."""
        try:
            if not self._shielded:
                data: bytes = await self._inner.read(n)
                return data
            if self._pending is None:
                self._pending = asyncio.ensure_future(self._inner.read(n))
                self._pending.add_done_callback(_retrieve)
            data = await asyncio.shield(self._pending)
            self._pending = None
        except (asyncio.IncompleteReadError, ConnectionError):
            self._pending = None
            return b""
        return data

    def _fail(self, reason: str) -> bool:
        self._closed = True
        self._packet = b""
        self._pos = 0
        self._violation(reason)
        return False
