"""Raw MQTT 3.1.1 packets for attacks on the broker: exact bytes, right or deliberately wrong.

Builds on ``tests.broker.wire`` (fixed header, PUBLISH) and adds what attacks need there:
CONNECT with credentials, SUBSCRIBE, and packets with a wrong remaining length.
"""

from __future__ import annotations

import socket
import struct
import time

from tests.broker.wire import packet, publish_packet

__all__ = [
    "PINGREQ",
    "connect_packet",
    "encode_length",
    "open_socket",
    "packet",
    "publish_packet",
    "read_until_closed",
    "split_packets",
    "subscribe_packet",
]

PINGREQ = b"\xc0\x00"


def encode_length(n: int) -> bytes:
    """The variable-length remaining-length encoding."""
    out = bytearray()
    while True:
        n, digit = divmod(n, 128)
        out.append(digit | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _field(value: str | bytes) -> bytes:
    raw = value.encode() if isinstance(value, str) else value
    return struct.pack("!H", len(raw)) + raw


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
    payload = _field(client_id)
    if will is not None:
        flags |= 0x04
        payload += _field(will[0]) + _field(will[1])
    if username is not None:
        flags |= 0x80
        payload += _field(username)
    if password is not None:
        flags |= 0x40
        payload += _field(password)
    header = _field(protocol) + bytes([level, flags]) + struct.pack("!H", keepalive)
    return packet(0x10, header + payload)


def subscribe_packet(packet_id: int, *filters: tuple[str | bytes, int]) -> bytes:
    body = struct.pack("!H", packet_id) + b"".join(_field(f) + bytes([q]) for f, q in filters)
    return packet(0x82, body)


def open_socket(port: int, timeout: float = 5.0) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
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
