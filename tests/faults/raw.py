"""Raw MQTT 3.1.1 packets for attacks on the broker: exact bytes, right or deliberately wrong.

Builds on ``tests.broker.wire`` (fixed header, fields, PUBLISH, SUBSCRIBE) and adds what
attacks need there: CONNECT with credentials and any protocol name or level, sockets that
read until the broker closes them, and a splitter for what came back.
"""

from __future__ import annotations

import socket
import struct
import time

from tests.broker.wire import (
    encode_length,
    encode_string,
    packet,
    publish_packet,
    subscribe_packet,
)

__all__ = [
    "CONNACK_ACCEPTED",
    "PINGREQ",
    "connect_packet",
    "encode_length",
    "open_socket",
    "packet",
    "publish_packet",
    "read_until_closed",
    "split_packets",
    "subscribe_packet",
    "try_login",
]

PINGREQ = b"\xc0\x00"


def connect_packet(
    client_id: str | bytes,
    *,
    username: str | bytes | None = None,
    password: str | bytes | None = None,
    keepalive: int = 60,
    clean: bool = True,
    will: tuple[str | bytes, bytes] | None = None,
    protocol: bytes = b"MQTT",
    level: int = 4,
) -> bytes:
    flags = 0x02 if clean else 0
    payload = encode_string(client_id)
    if will is not None:
        flags |= 0x04
        payload += encode_string(will[0]) + encode_string(will[1])
    if username is not None:
        flags |= 0x80
        payload += encode_string(username)
    if password is not None:
        flags |= 0x40
        payload += encode_string(password)
    header = encode_string(protocol) + bytes([level, flags]) + struct.pack("!H", keepalive)
    return packet(0x10, header + payload)


def open_socket(port: int, timeout: float = 5.0, *, source: str | None = None) -> socket.socket:
    """A TCP connection to 127.0.0.1; ``source`` another loopback address (127.0.0.2...) to
    come from, as a second machine would."""
    address = None if source is None else (source, 0)
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout, source_address=address)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def read_until_closed(sock: socket.socket, timeout: float) -> tuple[bool, bytes]:
    """Read until the peer closes (True) or ``timeout`` passes (False); and what came."""
    received = bytearray()
    deadline = time.monotonic() + timeout
    while (remaining := deadline - time.monotonic()) > 0:
        sock.settimeout(remaining)
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            break
        except ConnectionResetError:
            return True, bytes(received)
        if not chunk:
            return True, bytes(received)
        received += chunk
    return False, bytes(received)


def split_packets(data: bytes) -> list[tuple[int, int, bytes]]:
    """The complete packets at the start of ``data``: (type, flags, body)."""
    packets = []
    pos = 0
    while pos + 2 <= len(data):
        length, shift, index = 0, 0, pos + 1
        while index < len(data):
            digit = data[index]
            length |= (digit & 0x7F) << shift
            shift += 7
            index += 1
            if not digit & 0x80:
                break
        else:
            break
        if index + length > len(data):
            break
        packets.append((data[pos] >> 4, data[pos] & 0x0F, data[index : index + length]))
        pos = index + length
    return packets


CONNACK_ACCEPTED = 0


def try_login(
    port: int, client_id: str, username: str, password: str, *, source: str | None = None
) -> tuple[int | None, float]:
    """(CONNACK return code, or None if closed without one; seconds until the answer).
    ``source``: the loopback address to come from (the throttle counts per address)."""
    started = time.monotonic()
    sock = open_socket(port, timeout=15, source=source)
    try:
        sock.sendall(connect_packet(client_id, username=username, password=password))
        data = b""
        while not (packets := split_packets(data)):
            chunk = sock.recv(64)
            if not chunk:
                return None, time.monotonic() - started
            data += chunk
    finally:
        sock.close()
    kind, _flags, body = packets[0]
    assert kind == 2, f"not a CONNACK: {data!r}"
    return int(body[1]), time.monotonic() - started
