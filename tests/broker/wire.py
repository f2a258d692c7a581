"""A raw-socket MQTT 3.1.1 client for broker tests: exact packets, flags, and timing."""

from __future__ import annotations

import itertools
import socket
import struct
import time
from collections import deque
from dataclasses import dataclass

__all__ = [
    "PUBACK",
    "PUBCOMP",
    "PUBLISH",
    "PUBREC",
    "PUBREL",
    "Connack",
    "Packet",
    "Publish",
    "RawClient",
    "Will",
    "connect_packet",
    "decode_publish",
    "encode_length",
    "encode_string",
    "packet",
    "publish_packet",
    "subscribe_packet",
]

CONNECT, CONNACK, PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP = 1, 2, 3, 4, 5, 6, 7
SUBSCRIBE, SUBACK, PINGREQ, PINGRESP, DISCONNECT = 8, 9, 12, 13, 14
PINGREQ_PACKET = b"\xc0\x00"
DISCONNECT_PACKET = b"\xe0\x00"


def encode_length(n: int) -> bytes:
    """The variable-length remaining-length encoding."""
    out = bytearray()
    while True:
        n, digit = divmod(n, 128)
        out.append(digit | (0x80 if n else 0))
        if not n:
            return bytes(out)


def encode_string(value: str | bytes) -> bytes:
    """A length-prefixed field (UTF-8 string or binary data)."""
    raw = value.encode() if isinstance(value, str) else value
    return struct.pack("!H", len(raw)) + raw


def packet(first: int, body: bytes) -> bytes:
    return bytes([first]) + encode_length(len(body)) + body


def publish_packet(
    topic: str | bytes, payload: bytes, *, qos: int = 0, retain: bool = False, packet_id: int = 1
) -> bytes:
    first = 0x30 | (qos << 1) | int(retain)
    head = encode_string(topic) + (struct.pack("!H", packet_id) if qos else b"")
    return packet(first, head + payload)


def subscribe_packet(packet_id: int, *filters: tuple[str | bytes, int]) -> bytes:
    fields = b"".join(encode_string(f) + bytes([q]) for f, q in filters)
    return packet(0x82, struct.pack("!H", packet_id) + fields)


@dataclass(frozen=True)
class Will:
    topic: str
    payload: bytes = b"gone"
    qos: int = 0
    retain: bool = False


def connect_packet(
    client_id: str,
    *,
    keepalive: int = 60,
    clean: bool = True,
    will: Will | None = None,
    username: str | None = None,
    password: str | None = None,
) -> bytes:
    flags = 0x02 if clean else 0
    payload = encode_string(client_id)
    if will is not None:
        flags |= 0x04 | (will.qos << 3) | (0x20 if will.retain else 0)
        payload += encode_string(will.topic) + encode_string(will.payload)
    if username is not None:
        flags |= 0x80
        payload += encode_string(username)
    if password is not None:
        flags |= 0x40
        payload += encode_string(password)
    header = encode_string("MQTT") + bytes([4, flags]) + struct.pack("!H", keepalive)
    return packet(0x10, header + payload)


@dataclass(frozen=True)
class Packet:
    kind: int
    flags: int
    body: bytes


@dataclass(frozen=True)
class Connack:
    session_present: bool
    return_code: int


@dataclass(frozen=True)
class Publish:
    topic: str
    payload: bytes
    qos: int
    retain: bool
    packet_id: int | None


class RawClient:
    """One blocking TCP connection to the broker on 127.0.0.1 speaking MQTT by hand.

    PUBLISH packets that arrive while waiting for something else are kept (``inbox``);
    QoS 1 ones are acknowledged. ``barrier()`` returns everything the broker routed to this
    client before a marker message it publishes to itself.
    """

    def __init__(self, port: int, *, receive_buffer: int | None = None) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            if receive_buffer is not None:  # before connect, so the TCP window stays small
                self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
            self.sock.settimeout(5.0)
            self.sock.connect(("127.0.0.1", port))
        except OSError:
            self.sock.close()
            raise
        self.client_id = ""
        self.inbox: deque[Publish] = deque()
        self._buffer = bytearray()
        self._ids = itertools.count(1)
        self._barrier_topic: str | None = None

    def close(self) -> None:
        self.sock.close()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    # --- requests -------------------------------------------------------------------------

    def connect(
        self,
        client_id: str,
        *,
        keepalive: int = 60,
        clean: bool = True,
        will: Will | None = None,
        username: str | None = None,
        password: str | None = None,
        timeout: float = 3.0,
    ) -> Connack:
        self.client_id = client_id
        self.send(
            connect_packet(
                client_id,
                keepalive=keepalive,
                clean=clean,
                will=will,
                username=username,
                password=password,
            )
        )
        reply = self.expect(CONNACK, timeout)
        return Connack(bool(reply.body[0] & 1), reply.body[1])

    def subscribe(self, *filters: tuple[str, int]) -> list[int]:
        packet_id = next(self._ids)
        self.send(subscribe_packet(packet_id, *filters))
        return list(self.expect(SUBACK).body[2:])

    def publish(
        self, topic: str, payload: bytes = b"", *, qos: int = 0, retain: bool = False
    ) -> None:
        """Publish; with QoS 1 wait for the PUBACK."""
        packet_id = next(self._ids)
        self.send(publish_packet(topic, payload, qos=qos, retain=retain, packet_id=packet_id))
        if qos == 1:
            self.expect(PUBACK)

    def ping(self) -> None:
        self.send(PINGREQ_PACKET)
        self.expect(PINGRESP)

    def disconnect(self) -> None:
        self.send(DISCONNECT_PACKET)
        self.close()

    # --- receiving ------------------------------------------------------------------------

    def receive(self, timeout: float = 3.0) -> Publish:
        """The next PUBLISH routed to this client."""
        deadline = time.monotonic() + timeout
        while not self.inbox:
            got = self._read(deadline)
            if got is None:
                raise ConnectionError("connection closed while waiting for a PUBLISH")
            self._other(got)
        return self.inbox.popleft()

    def barrier(self) -> list[Publish]:
        """All PUBLISHes routed to this client before a marker it sends itself now.

        The broker routes messages in order, so anything it had to deliver here earlier
        arrives before the marker.
        """
        if self._barrier_topic is None:
            self._barrier_topic = f"barrier/{self.client_id}"
            self.subscribe((self._barrier_topic, 0))
        token = f"{next(self._ids)}".encode()
        self.publish(self._barrier_topic, token)
        received: list[Publish] = []
        while True:
            message = self.receive()
            if message.topic == self._barrier_topic and message.payload == token:
                return received
            received.append(message)

    def expect(self, kind: int, timeout: float = 3.0) -> Packet:
        """The next packet of this type (PUBLISHes meanwhile go to the inbox)."""
        deadline = time.monotonic() + timeout
        while True:
            got = self._read(deadline)
            if got is None:
                raise ConnectionError(f"connection closed while waiting for packet type {kind}")
            if got.kind == kind:
                return got
            self._other(got)

    def wait_closed(self, timeout: float) -> bool:
        """True once the broker closes the connection (packets meanwhile are kept)."""
        deadline = time.monotonic() + timeout
        try:
            while (got := self._read(deadline)) is not None:
                self._other(got)
        except TimeoutError:
            return False
        return True

    def read_packet(self, timeout: float) -> Packet | None:
        """The next raw packet, None once the connection is closed."""
        return self._read(time.monotonic() + timeout)

    def _other(self, got: Packet) -> None:
        if got.kind != PUBLISH:
            raise AssertionError(f"unexpected packet {got}")
        message = decode_publish(got)
        if message.qos == 1:
            assert message.packet_id is not None
            self.send(packet(0x40, struct.pack("!H", message.packet_id)))
        self.inbox.append(message)

    def _read(self, deadline: float) -> Packet | None:
        while (parsed := _parse(self._buffer)) is None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("no packet from the broker in time")
            self.sock.settimeout(remaining)
            try:
                chunk = self.sock.recv(65536)
            except ConnectionError:  # reset by the broker
                chunk = b""
            if not chunk:
                return None
            self._buffer += chunk
        got, used = parsed
        del self._buffer[:used]
        return got


def _parse(buffer: bytearray) -> tuple[Packet, int] | None:
    length, shift, pos = 0, 0, 1
    while True:
        if pos >= len(buffer):
            return None
        digit = buffer[pos]
        length |= (digit & 0x7F) << shift
        shift += 7
        pos += 1
        if not digit & 0x80:
            break
    if len(buffer) < pos + length:
        return None
    first = buffer[0]
    return Packet(first >> 4, first & 0x0F, bytes(buffer[pos : pos + length])), pos + length


def decode_publish(got: Packet) -> Publish:
    qos = (got.flags >> 1) & 0x03
    size = struct.unpack("!H", got.body[:2])[0]
    topic = got.body[2 : 2 + size].decode()
    rest = got.body[2 + size :]
    packet_id = None
    if qos:
        packet_id = struct.unpack("!H", rest[:2])[0]
        rest = rest[2:]
    return Publish(topic, rest, qos, bool(got.flags & 0x01), packet_id)
