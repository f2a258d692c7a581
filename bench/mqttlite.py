"""A minimal asyncio MQTT 3.1.1 client, over TCP or over WebSocket (subprotocol ``mqtt``).

Only what the load generator needs: CONNECT/CONNACK, SUBSCRIBE/SUBACK, PUBLISH in and out
at QoS 0 and 1 (PUBACK both ways), PINGREQ/PINGRESP, DISCONNECT. It reads in large chunks
and parses every packet in the chunk, so hundreds of clients share one process and one
event loop cheaply; paho (one ``recv`` per header byte, and per WebSocket header field)
costs several times more per message. Messages are handed over raw (topic, payload bytes).

Errors: ``MqttLiteError`` (refused CONNECT, failed WebSocket upgrade, closed connection).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import socket
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = [
    "LiteClient",
    "LiteOptions",
    "MqttLiteError",
    "encode_string",
    "mqtt_packet",
    "remaining_length",
]

OnMessage = Callable[[str, bytes], None]

_CONNACK = 0x20
_PUBLISH = 0x30
_PUBACK = 0x40
_SUBACK = 0x90
_PINGRESP = 0xD0
_WS_BINARY = 0x2
_WS_CLOSE = 0x8
_WS_PING = 0x9
_WS_PONG = 0xA


class MqttLiteError(Exception):
    """The connection failed or was refused."""


@dataclass(frozen=True, slots=True)
class LiteOptions:
    host: str
    port: int
    client_id: str
    username: str | None = None
    password: str | None = None
    keepalive: int = 60
    websocket_path: str | None = None
    """Set for MQTT over WebSocket: ``port`` is then the HTTP port."""


def remaining_length(n: int) -> bytes:
    """MQTT's variable-length encoding of a packet's remaining length."""
    out = bytearray()
    while True:
        byte, n = n % 128, n // 128
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def encode_string(value: str) -> bytes:
    """A length-prefixed UTF-8 field."""
    data = value.encode()
    return struct.pack("!H", len(data)) + data


def mqtt_packet(first: int, body: bytes) -> bytes:
    """A whole packet: the fixed header's first byte, the remaining length, the body."""
    return bytes((first,)) + remaining_length(len(body)) + body


def connect_packet(opts: LiteOptions) -> bytes:
    flags = 0x02  # clean session
    payload = encode_string(opts.client_id)
    if opts.username is not None:
        flags |= 0x80
        payload += encode_string(opts.username)
    if opts.password is not None:
        flags |= 0x40
        payload += encode_string(opts.password)
    header = encode_string("MQTT") + bytes((4, flags)) + struct.pack("!H", opts.keepalive)
    return mqtt_packet(0x10, header + payload)


def _mask(data: bytes, key: bytes) -> bytes:
    if not data:
        return data
    n = len(data)
    keys = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(data, "big") ^ int.from_bytes(keys, "big")).to_bytes(n, "big")


def ws_frame(data: bytes) -> bytes:
    """One masked binary frame (clients must mask)."""
    n = len(data)
    if n < 126:
        header = bytes((0x80 | _WS_BINARY, 0x80 | n))
    elif n < 65536:
        header = bytes((0x80 | _WS_BINARY, 0x80 | 126)) + struct.pack("!H", n)
    else:
        header = bytes((0x80 | _WS_BINARY, 0x80 | 127)) + struct.pack("!Q", n)
    key = os.urandom(4)
    return header + key + _mask(data, key)


def _control_frame(opcode: int, data: bytes) -> bytes:
    key = os.urandom(4)
    return bytes((0x80 | opcode, 0x80 | len(data))) + key + _mask(data, key)


class LiteClient(asyncio.Protocol):
    """``client = await LiteClient.open(opts, on_message)``; then ``subscribe``/``publish``."""

    def __init__(self, opts: LiteOptions, on_message: OnMessage) -> None:
        self.opts = opts
        self.on_message = on_message
        self.last_sent = time.monotonic()
        self.closed = asyncio.Event()
        self._transport: asyncio.Transport | None = None
        self._ws = opts.websocket_path is not None
        self._handshaken = not self._ws
        self._ws_key = base64.b64encode(os.urandom(16)).decode()
        self._raw = bytearray()  # WebSocket frames not yet complete
        self._buf = bytearray()  # MQTT bytes not yet a complete packet
        self._next_id = 0
        self._waiting: dict[int, asyncio.Future[bytes]] = {}  # packet id -> SUBACK/PUBACK
        self._connack: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._upgraded: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    # --- opening and closing -------------------------------------------------------------
    @classmethod
    async def open(
        cls, opts: LiteOptions, on_message: OnMessage, within: float = 20.0
    ) -> LiteClient:
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(within):
            _transport, client = await loop.create_connection(
                lambda: cls(opts, on_message), opts.host, opts.port
            )
            if client._ws:
                await client._upgraded
            client._write(connect_packet(opts))
            code = await client._connack
        if code != 0:
            client.abort()
            msg = f"{opts.client_id}: CONNACK {code}"
            raise MqttLiteError(msg)
        return client

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None:  # asyncio sets it already; say so for the reader
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self._ws:
            request = (
                f"GET {self.opts.websocket_path} HTTP/1.1\r\n"
                f"Host: {self.opts.host}:{self.opts.port}\r\n"
                "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Key: {self._ws_key}\r\n"
                "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: mqtt\r\n\r\n"
            )
            transport.write(request.encode())

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed.set()
        error = MqttLiteError(f"{self.opts.client_id}: connection lost ({exc!r})")
        futures: list[asyncio.Future[Any]] = [self._connack, self._upgraded]
        for future in [*futures, *self._waiting.values()]:
            if not future.done():
                future.set_exception(error)
                future.exception()  # mark retrieved: nobody may be waiting
        self._waiting.clear()

    def abort(self) -> None:
        if self._transport is not None:
            self._transport.abort()

    async def disconnect(self) -> None:
        if self._transport is not None and not self._transport.is_closing():
            with contextlib.suppress(MqttLiteError):
                self._write(b"\xe0\x00")
            self._transport.close()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.closed.wait(), 2)

    # --- sending -------------------------------------------------------------------------
    def _write(self, data: bytes) -> None:
        if self._transport is None or self._transport.is_closing():
            msg = f"{self.opts.client_id}: not connected"
            raise MqttLiteError(msg)
        self._transport.write(ws_frame(data) if self._ws else data)
        self.last_sent = time.monotonic()

    def _packet_id(self) -> int:
        self._next_id = self._next_id % 65535 + 1
        return self._next_id

    async def subscribe(self, filters: list[tuple[str, int]], within: float = 20.0) -> bytes:
        """Subscribe; returns the SUBACK return codes."""
        pid = self._packet_id()
        body = struct.pack("!H", pid) + b"".join(encode_string(t) + bytes((q,)) for t, q in filters)
        future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._waiting[pid] = future
        self._write(mqtt_packet(0x82, body))
        return await asyncio.wait_for(future, within)

    def publish(self, topic: str, payload: bytes, qos: int = 0) -> None:
        """Fire and forget (a QoS 1 PUBACK is consumed silently)."""
        if qos:
            body = encode_string(topic) + struct.pack("!H", self._packet_id()) + payload
        else:
            body = encode_string(topic) + payload
        self._write(mqtt_packet(_PUBLISH | (qos << 1), body))

    def ping(self) -> None:
        self._write(b"\xc0\x00")

    # --- receiving -----------------------------------------------------------------------
    def data_received(self, data: bytes) -> None:
        if not self._ws:
            self._buf += data
            self._parse_mqtt()
            return
        self._raw += data
        if not self._handshaken and not self._handshake():
            return
        self._parse_frames()
        self._parse_mqtt()

    def _handshake(self) -> bool:
        end = self._raw.find(b"\r\n\r\n")
        if end < 0:
            return False
        head = bytes(self._raw[:end]).decode("latin-1")
        del self._raw[: end + 4]
        if not head.startswith("HTTP/1.1 101"):
            self._upgraded.set_exception(MqttLiteError(f"WebSocket upgrade refused: {head[:80]}"))
            self.abort()
            return False
        self._handshaken = True
        self._upgraded.set_result(None)
        return True

    def _parse_frames(self) -> None:
        raw = self._raw
        pos = 0
        end = len(raw)
        while end - pos >= 2:
            opcode = raw[pos] & 0x0F
            length = raw[pos + 1] & 0x7F
            start = pos + 2
            if length == 126:
                if end - pos < 4:
                    break
                length = (raw[pos + 2] << 8) | raw[pos + 3]
                start = pos + 4
            elif length == 127:
                if end - pos < 10:
                    break
                length = int.from_bytes(raw[pos + 2 : pos + 10], "big")
                start = pos + 10
            if end - start < length:
                break
            payload = raw[start : start + length]  # servers do not mask
            pos = start + length
            if opcode in (_WS_BINARY, 0x0):
                self._buf += payload
            elif opcode == _WS_PING and self._transport is not None:
                self._transport.write(_control_frame(_WS_PONG, bytes(payload)))
            elif opcode == _WS_CLOSE:
                self.abort()
                break
        if pos:
            del raw[:pos]

    def _parse_mqtt(self) -> None:
        buf = self._buf
        pos = 0
        end = len(buf)
        while end - pos >= 2:
            first = buf[pos]
            i = pos + 1
            length = 0
            multiplier = 1
            complete = False
            while i < end and i < pos + 5:
                byte = buf[i]
                i += 1
                length += (byte & 0x7F) * multiplier
                multiplier *= 128
                if not byte & 0x80:
                    complete = True
                    break
            if not complete or end - i < length:
                break
            body = bytes(buf[i : i + length])
            pos = i + length
            self._dispatch(first, body)
        if pos:
            del buf[:pos]

    def _dispatch(self, first: int, body: bytes) -> None:
        kind = first & 0xF0
        if kind == _PUBLISH:
            qos = (first >> 1) & 0x03
            tlen = (body[0] << 8) | body[1]
            topic = body[2 : 2 + tlen].decode()
            start = 2 + tlen
            if qos:
                self._write(b"\x40\x02" + body[start : start + 2])
                start += 2
            self.on_message(topic, body[start:])
        elif kind in (_SUBACK, _PUBACK):
            pid = (body[0] << 8) | body[1]
            future = self._waiting.pop(pid, None)
            if future is not None and not future.done():
                future.set_result(body[2:])
        elif kind == _CONNACK and not self._connack.done():
            self._connack.set_result(body[1])
        # PINGRESP and anything else: nothing to do
