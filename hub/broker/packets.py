"""MQTT 3.1.1 packets the broker writes, and the client packets it decodes itself (pure).

amqtt decodes and encodes through packet objects (``MQTTFixedHeader``, ``PublishPacket``,
variable headers, payload classes) read from an async stream one field at a time: tens of
microseconds per packet. The broker's hot path only needs a few fixed layouts, so they are
written out here as bytes, and the packets a client sends are decoded from one complete
packet body (``framing.PacketSplitter`` cuts the stream). A malformed body raises
``MalformedPacket``; the connection is then closed [MQTT-4.8.0-1].
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "PINGRESP",
    "Connect",
    "MalformedPacket",
    "Will",
    "connack",
    "decode_connect",
    "decode_subscribe",
    "decode_unsubscribe",
    "packet_id",
    "puback",
    "pubcomp",
    "publish",
    "pubrec",
    "pubrel",
    "remaining_length",
    "suback",
    "unsuback",
]

PINGRESP = b"\xd0\x00"
_MAX_REMAINING_LENGTH = 268_435_455


class MalformedPacket(Exception):  # noqa: N818 - named after the MQTT term
    """A packet body that does not follow MQTT 3.1.1; the reason is the message."""


def remaining_length(n: int) -> bytes:
    """The variable-length "remaining length" field of a fixed header."""
    if n < 128:
        return bytes((n,))
    if n > _MAX_REMAINING_LENGTH:
        msg = f"packet of {n} bytes is too large for MQTT"
        raise ValueError(msg)
    out = bytearray()
    while True:
        n, digit = divmod(n, 128)
        out.append(digit | (0x80 if n else 0))
        if not n:
            return bytes(out)


def connack(session_present: bool, return_code: int) -> bytes:
    return bytes((0x20, 0x02, 1 if session_present else 0, return_code))


def puback(pid: int) -> bytes:
    return bytes((0x40, 0x02, pid >> 8, pid & 0xFF))


def pubrec(pid: int) -> bytes:
    return bytes((0x50, 0x02, pid >> 8, pid & 0xFF))


def pubrel(pid: int) -> bytes:
    return bytes((0x62, 0x02, pid >> 8, pid & 0xFF))


def pubcomp(pid: int) -> bytes:
    return bytes((0x70, 0x02, pid >> 8, pid & 0xFF))


def unsuback(pid: int) -> bytes:
    return bytes((0xB0, 0x02, pid >> 8, pid & 0xFF))


def suback(pid: int, return_codes: list[int]) -> bytes:
    return (
        b"\x90"
        + remaining_length(2 + len(return_codes))
        + pid.to_bytes(2, "big")
        + bytes(return_codes)
    )


def publish(
    topic: bytes, payload: bytes, qos: int, pid: int = 0, *, retain: bool = False, dup: bool = False
) -> bytes:
    """A whole PUBLISH packet (``topic`` already UTF-8 encoded)."""
    first = 0x30 | (qos << 1) | (0x01 if retain else 0) | (0x08 if dup else 0)
    head = len(topic).to_bytes(2, "big") + topic
    if qos:
        head += pid.to_bytes(2, "big")
    return bytes((first,)) + remaining_length(len(head) + len(payload)) + head + payload


def packet_id(body: bytes) -> int:
    """The packet identifier of a PUBACK/PUBREC/PUBREL/PUBCOMP body (length checked by
    the framing)."""
    return (body[0] << 8) | body[1]


class _Cursor:
    """Reads MQTT fields off one packet body; running past its end is a malformed packet."""

    __slots__ = ("_body", "pos")

    def __init__(self, body: bytes, pos: int = 0) -> None:
        self._body = body
        self.pos = pos

    @property
    def left(self) -> int:
        return len(self._body) - self.pos

    def byte(self) -> int:
        if self.pos >= len(self._body):
            raise MalformedPacket("packet ends inside a field")
        value = self._body[self.pos]
        self.pos += 1
        return value

    def u16(self) -> int:
        return (self.byte() << 8) | self.byte()

    def data(self) -> bytes:
        size = self.u16()
        if self.pos + size > len(self._body):
            raise MalformedPacket("a length field overruns the packet")
        value = self._body[self.pos : self.pos + size]
        self.pos += size
        return value

    def text(self) -> str:
        raw = self.data()
        try:
            value = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise MalformedPacket("string field is not valid UTF-8 [MQTT-1.5.3-1]") from exc
        if "\x00" in value:
            raise MalformedPacket("string field with U+0000 [MQTT-1.5.3-2]")
        return value


@dataclass(frozen=True, slots=True)
class Will:
    topic: str
    message: bytes
    qos: int
    retain: bool


@dataclass(frozen=True, slots=True)
class Connect:
    """A decoded CONNECT; ``return_code`` is non-zero when it must be refused with that
    CONNACK code (and the connection closed)."""

    protocol_name: str
    level: int
    clean_session: bool
    keep_alive: int
    client_id: str
    will: Will | None
    username: str | None
    password: str | None
    return_code: int = 0


_CONNACK_UNACCEPTABLE_PROTOCOL = 1
_CONNACK_IDENTIFIER_REJECTED = 2
_CONNACK_BAD_CREDENTIALS = 4


def decode_connect(body: bytes) -> Connect:
    """Decode a CONNECT body. Raises ``MalformedPacket`` when the connection must be closed
    without a CONNACK [MQTT-3.1.2-1, -3, -11, -13, -14, -15, -22]."""
    cursor = _Cursor(body)
    name = cursor.text()
    if name != "MQTT":
        raise MalformedPacket(f"protocol name {name!r} [MQTT-3.1.2-1]")
    level = cursor.byte()
    flags = cursor.byte()
    keep_alive = cursor.u16()
    if level != 4:  # only MQTT 3.1.1 [MQTT-3.1.2-2]
        return Connect(
            name, level, True, keep_alive, "", None, None, None, _CONNACK_UNACCEPTABLE_PROTOCOL
        )
    if flags & 0x01:
        raise MalformedPacket("CONNECT reserved flag set [MQTT-3.1.2-3]")
    will_flag, will_qos, will_retain = bool(flags & 0x04), (flags >> 3) & 0x03, bool(flags & 0x20)
    if will_qos == 3:
        raise MalformedPacket("will QoS 3 [MQTT-3.1.2-14]")
    if not will_flag and (will_qos or will_retain):
        raise MalformedPacket("will QoS or retain without a will [MQTT-3.1.2-13, -15]")
    username_flag, password_flag = bool(flags & 0x80), bool(flags & 0x40)
    client_id = cursor.text()
    will = None
    if will_flag:
        will_topic = cursor.text()
        if not will_topic or "+" in will_topic or "#" in will_topic:
            # a topic name, never a filter [MQTT-3.1.3-10, MQTT-4.7.1-1, MQTT-4.7.3-1]
            raise MalformedPacket(f"will topic {will_topic!r} is not a topic name")
        will = Will(will_topic, cursor.data(), will_qos, will_retain)
    username = cursor.text() if username_flag else None
    password = None
    if password_flag:
        try:
            password = cursor.data().decode("utf-8")
        except UnicodeDecodeError:
            password = ""  # binary passwords never match the hub's users
    if cursor.left:
        raise MalformedPacket("bytes after the CONNECT payload")
    clean = bool(flags & 0x02)
    code = 0
    if password_flag and not username_flag:
        code = _CONNACK_BAD_CREDENTIALS  # [MQTT-3.1.2-22]
    elif not client_id and not clean:
        code = _CONNACK_IDENTIFIER_REJECTED  # [MQTT-3.1.3-8]
    return Connect(name, level, clean, keep_alive, client_id, will, username, password, code)


def decode_subscribe(body: bytes) -> tuple[int, list[tuple[str, int]]]:
    """(packet id, [(filter, requested QoS)]) of a SUBSCRIBE body."""
    cursor = _Cursor(body)
    pid = cursor.u16()
    topics: list[tuple[str, int]] = []
    while cursor.left:
        topic_filter = cursor.text()
        options = cursor.byte()
        if options > 2:  # reserved bits set or QoS 3 [MQTT-3.8.3-4]
            raise MalformedPacket(f"SUBSCRIBE options byte {options:#x} [MQTT-3-8.3-4]")
        topics.append((topic_filter, options))
    if not topics:
        raise MalformedPacket("SUBSCRIBE without a topic filter [MQTT-3.8.3-3]")
    return pid, topics


def decode_unsubscribe(body: bytes) -> tuple[int, list[str]]:
    """(packet id, [filter]) of an UNSUBSCRIBE body."""
    cursor = _Cursor(body)
    pid = cursor.u16()
    filters: list[str] = []
    while cursor.left:
        filters.append(cursor.text())
    if not filters:
        raise MalformedPacket("UNSUBSCRIBE without a topic filter [MQTT-3.10.3-2]")
    return pid, filters
