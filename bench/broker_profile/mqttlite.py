"""A small asyncio MQTT 3.1.1 client for load generation (hundreds of clients per process).

One ``asyncio.Protocol`` per connection, packets parsed synchronously in ``data_received``;
QoS 1 deliveries are acknowledged at once. TCP_NODELAY is set on every socket. Over
WebSocket it speaks through ``websockets`` (one MQTT packet per binary frame).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import socket
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bench.mqttlite import encode_string, mqtt_packet

__all__ = ["Client", "Received", "connect_tcp", "connect_ws"]

OnMessage = Callable[[str, bytes, int], None]


@dataclass(slots=True)
class Received:
    topic: str
    payload: bytes
    qos: int


class Client(asyncio.Protocol):
    """One MQTT connection. ``on_message(topic, payload, qos)`` runs for every PUBLISH."""

    def __init__(self, on_message: OnMessage | None = None) -> None:
        self.on_message = on_message
        self.transport: Any = None
        self._buffer = bytearray()
        self._ids = itertools.count(1)
        self._waiters: dict[tuple[int, int], asyncio.Future[bytes]] = {}
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.received = 0
        self._send: Callable[[bytes], None] = self._send_tcp

    # --- transport callbacks -------------------------------------------------------------
    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)
        for waiter in self._waiters.values():
            if not waiter.done():
                waiter.set_exception(ConnectionError("closed"))

    def data_received(self, data: bytes) -> None:
        buf = self._buffer
        buf += data
        pos = 0
        end = len(buf)
        while end - pos >= 2:
            first = buf[pos]
            length = 0
            shift = 0
            i = pos + 1
            while True:
                if i >= end:
                    del buf[:pos]
                    return
                byte = buf[i]
                length |= (byte & 0x7F) << shift
                i += 1
                if not byte & 0x80:
                    break
                shift += 7
            if end - i < length:
                break
            body = bytes(buf[i : i + length])
            pos = i + length
            self._packet(first, body)
        del buf[:pos]

    def _packet(self, first: int, body: bytes) -> None:
        kind = first >> 4
        if kind == 3:
            qos = (first >> 1) & 3
            tlen = (body[0] << 8) | body[1]
            topic = body[2 : 2 + tlen].decode()
            start = 2 + tlen
            if qos:
                pid = body[start : start + 2]
                start += 2
                self._send(b"\x40\x02" + pid)
            self.received += 1
            if self.on_message is not None:
                self.on_message(topic, body[start:], qos)
            return
        key = (kind, int.from_bytes(body[:2], "big") if kind in (4, 9, 11) else 0)
        waiter = self._waiters.pop(key, None)
        if waiter is not None and not waiter.done():
            waiter.set_result(body)

    def _send_tcp(self, data: bytes) -> None:
        self.transport.write(data)

    async def _request(self, data: bytes, key: tuple[int, int], within: float) -> bytes:
        waiter: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._waiters[key] = waiter
        self._send(data)
        return await asyncio.wait_for(waiter, within)

    # --- requests ------------------------------------------------------------------------
    async def connect(
        self,
        client_id: str,
        username: str | None = None,
        password: str | None = None,
        *,
        keepalive: int = 60,
        within: float = 60.0,
    ) -> int:
        flags = 0x02
        payload = encode_string(client_id)
        if username is not None:
            flags |= 0x80
            payload += encode_string(username)
        if password is not None:
            flags |= 0x40
            payload += encode_string(password)
        header = encode_string("MQTT") + bytes([4, flags]) + struct.pack("!H", keepalive)
        body = await self._request(mqtt_packet(0x10, header + payload), (2, 0), within)
        return body[1]

    async def subscribe(self, *filters: tuple[str, int], within: float = 30.0) -> bytes:
        pid = next(self._ids) & 0xFFFF or 1
        body = struct.pack("!H", pid) + b"".join(encode_string(f) + bytes([q]) for f, q in filters)
        got = await self._request(mqtt_packet(0x82, body), (9, pid), within)
        return got[2:]

    def publish(self, topic: str, payload: bytes, *, qos: int = 0) -> None:
        """Fire and forget (a QoS 1 PUBACK is simply ignored)."""
        pid = b""
        if qos:
            pid = struct.pack("!H", next(self._ids) & 0xFFFF or 1)
        self._send(mqtt_packet(0x30 | (qos << 1), encode_string(topic) + pid + payload))

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


async def connect_tcp(port: int, on_message: OnMessage | None = None) -> Client:
    loop = asyncio.get_running_loop()
    _transport, client = await loop.create_connection(lambda: Client(on_message), "127.0.0.1", port)
    return client


class _WsTransport:
    """Adapts a websockets connection to the tiny transport surface ``Client`` uses."""

    def __init__(self, ws: Any, client: Client) -> None:
        self._ws = ws
        self._client = client
        self._outbox: list[bytes] = []
        self._flushing = False
        self._sends: set[asyncio.Task[None]] = set()
        self._task = asyncio.ensure_future(self._read())

    def write(self, data: bytes) -> None:
        self._outbox.append(data)
        if not self._flushing:
            self._flushing = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self._flushing = False
        if self._outbox:
            data = b"".join(self._outbox)
            self._outbox.clear()
            task = asyncio.ensure_future(self._send(data))
            self._sends.add(task)
            task.add_done_callback(self._sends.discard)

    async def _send(self, data: bytes) -> None:
        with contextlib.suppress(Exception):
            await self._ws.send(data)

    def get_extra_info(self, name: str) -> Any:
        return None

    async def _read(self) -> None:
        try:
            async for message in self._ws:
                self._client.data_received(message)
        except Exception:  # noqa: BLE001, S110 - a load client just stops
            pass
        self._client.connection_lost(None)

    def close(self) -> None:
        self._task.cancel()
        task = asyncio.ensure_future(self._send_close())
        self._sends.add(task)
        task.add_done_callback(self._sends.discard)

    async def _send_close(self) -> None:
        with contextlib.suppress(Exception):
            await self._ws.close()


async def connect_ws(port: int, on_message: OnMessage | None = None, path: str = "/mqtt") -> Client:
    from websockets.asyncio.client import connect  # noqa: PLC0415
    from websockets.typing import Subprotocol  # noqa: PLC0415

    ws = await connect(
        f"ws://127.0.0.1:{port}{path}",
        subprotocols=[Subprotocol("mqtt")],
        compression=None,
        max_size=2**20,
    )
    sock = ws.transport.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    client = Client(on_message)
    client.transport = _WsTransport(ws, client)
    return client
