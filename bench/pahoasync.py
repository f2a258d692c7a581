"""paho-mqtt driven by the running asyncio loop (``add_reader``/``add_writer``), no thread.

paho supports external loops through its socket callbacks; here every client of a worker
process shares that process's event loop, and one task calls ``loop_misc`` (keep-alive)
for all of them. TCP_NODELAY is set on each socket as it opens (paho leaves Nagle on).
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from typing import Any, cast

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode

__all__ = ["PahoClient", "PahoError"]

OnMessage = Callable[[str, bytes], None]


class PahoError(Exception):
    """A paho client could not connect or subscribe."""


class PahoClient:
    """``client = await PahoClient.open(host, port, client_id, ...)``."""

    def __init__(
        self,
        client_id: str,
        on_message: OnMessage,
        *,
        username: str | None,
        password: str | None,
    ) -> None:
        self.client_id = client_id
        self._loop = asyncio.get_running_loop()
        self._client = paho.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id, reconnect_on_failure=False
        )
        if username is not None:
            self._client.username_pw_set(username, password)
        self._client.on_socket_open = self._socket_open
        self._client.on_socket_close = self._socket_close
        self._client.on_socket_register_write = self._register_write
        self._client.on_socket_unregister_write = self._unregister_write
        self._client.on_connect = self._on_connect
        self._client.on_subscribe = self._on_subscribe
        self._client.on_message = lambda _c, _u, m: on_message(m.topic, cast(bytes, m.payload))
        self._connack: asyncio.Future[bool] = self._loop.create_future()
        self._subacks: dict[int, asyncio.Future[None]] = {}
        self.closed = asyncio.Event()

    @classmethod
    async def open(
        cls,
        host: str,
        port: int,
        client_id: str,
        on_message: OnMessage,
        *,
        username: str | None = None,
        password: str | None = None,
        keepalive: int = 60,
        within: float = 20.0,
    ) -> PahoClient:
        client = cls(client_id, on_message, username=username, password=password)
        try:
            client._client.connect(host, port, keepalive)  # loopback: the blocking part is short
        except OSError as exc:
            msg = f"{client_id}: cannot connect: {exc}"
            raise PahoError(msg) from exc
        ok = await asyncio.wait_for(client._connack, within)
        if not ok:
            client.abort()
            msg = f"{client_id}: CONNACK refused"
            raise PahoError(msg)
        return client

    # --- paho's socket callbacks ---------------------------------------------------------
    def _socket_open(self, client: paho.Client, _u: Any, sock: Any) -> None:
        if isinstance(sock, socket.socket):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._loop.add_reader(sock, client.loop_read)

    def _socket_close(self, _client: paho.Client, _u: Any, sock: Any) -> None:
        self._loop.remove_reader(sock)
        self._loop.remove_writer(sock)
        self.closed.set()
        if not self._connack.done():
            self._connack.set_result(False)

    def _register_write(self, client: paho.Client, _u: Any, sock: Any) -> None:
        self._loop.add_writer(sock, client.loop_write)

    def _unregister_write(self, _client: paho.Client, _u: Any, sock: Any) -> None:
        self._loop.remove_writer(sock)

    def _on_connect(self, _c: paho.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if not self._connack.done():
            self._connack.set_result(not reason.is_failure)

    def _on_subscribe(self, _c: paho.Client, _u: Any, mid: int, _codes: Any, _p: Any) -> None:
        future = self._subacks.pop(mid, None)
        if future is not None and not future.done():
            future.set_result(None)

    # --- use -----------------------------------------------------------------------------
    async def subscribe(self, filters: list[tuple[str, int]], within: float = 20.0) -> None:
        future: asyncio.Future[None] = self._loop.create_future()
        result, mid = self._client.subscribe(filters)
        if result != MQTTErrorCode.MQTT_ERR_SUCCESS or mid is None:
            msg = f"{self.client_id}: subscribe failed: {result}"
            raise PahoError(msg)
        self._subacks[mid] = future
        await asyncio.wait_for(future, within)

    def publish(self, topic: str, payload: bytes, qos: int = 0) -> None:
        self._client.publish(topic, payload, qos=qos)

    def misc(self) -> None:
        """Keep-alive and retries; call about once a second."""
        if not self.closed.is_set():
            self._client.loop_misc()

    def abort(self) -> None:
        sock = self._client.socket()
        if sock is not None:
            self._loop.remove_reader(sock)
            self._loop.remove_writer(sock)
            sock.close()
        self.closed.set()

    async def disconnect(self) -> None:
        if not self.closed.is_set():
            self._client.disconnect()
            try:
                await asyncio.wait_for(self.closed.wait(), 2)
            except TimeoutError:
                self.abort()
