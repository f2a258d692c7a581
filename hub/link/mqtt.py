"""MqttTransport: hub.transport.Transport over an MQTT client connection (aiomqtt).

Reconnects forever with capped exponential backoff and jitter, trying the URL's nodes in
turn (a cluster: the next node at once, the backoff only after a whole round has failed,
and a node that does not answer the CONNECT within 2 s is left for the next one, the
wait doubling with each round that failed); after every reconnect it re-subscribes and
calls the service back so it republishes its retained topics. A publish waiting for its
PUBACK when the connection drops fails at once (aiomqtt would wait out its whole timeout,
and the service with it).
"""

from __future__ import annotations

import asyncio
import logging
import random
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from types import TracebackType
from typing import Any, Self

import aiomqtt
import paho.mqtt.client as paho
from paho.mqtt.reasoncodes import ReasonCode

from hub.protocol.broker_url import BrokerUrl
from hub.transport import Inbound, Inbox, TransportError

__all__ = ["MqttTransport", "SocketSafeClient"]

_LOGGER = logging.getLogger(__name__)
_BACKOFF_CAP = 10.0
_NODE_TIMEOUT = 2.0
"""Seconds a cluster's node may take to answer the CONNECT before the next one is tried
(doubled after each whole round that failed, up to ``connect_timeout``). Measured on a
3-node NATS cluster, kill -9 of the service's node: the next node holds the CONNECT while
it asks JetStream for the MQTT session record, whose stream leader died with the node; it
gives up after its 5 s JetStream API timeout (and then still sends no CONNACK), while the
new leader is elected ~5 s after the kill (a follower waits 4-9 s for a lost leader:
``minElectionTimeoutDefault``/``maxElectionTimeoutDefault`` in nats-server's server/raft.go;
nats-io/nats-server#3787, #2226: MQTT CONNECTs fail while an MQTT stream has no leader).
With aiomqtt's single 10 s timeout the service came back 10.3-11 s after the kill; a short
wait per node lets it ask again once a leader exists."""


class SocketSafeClient(aiomqtt.Client):
    """aiomqtt's client, watching its socket for writability only while the socket is open.

    aiomqtt 2.5.1 (``_on_socket_register_write``) reads ``sock.fileno()`` and schedules
    ``loop.add_writer`` for the next loop iteration (``call_soon_threadsafe``, since paho may
    call it from the connect thread). When the broker dies in between, paho has closed the
    socket by then: ``add_writer`` raises EBADF inside a loop callback (a traceback in the
    hub's log, seen with kill -9 of Mosquitto under a turn storm), or, had the number been
    reused meanwhile, would watch another socket. Here the socket is checked when the
    registration runs. aiomqtt 3 rewrites its socket handling (empicano/aiomqtt#399), not
    released as 2.x.
    """

    def _on_socket_register_write(
        self,
        client: paho.Client,
        userdata: Any,
        sock: Any,  # aiomqtt's PahoSocket
    ) -> None:
        def writable() -> None:
            try:
                client.loop_write()
            except Exception as exc:  # noqa: BLE001 - as aiomqtt: the connection broke
                if not self._disconnected.done():
                    self._disconnected.set_exception(exc)

        def register() -> None:
            fileno = sock.fileno()
            if fileno != -1:  # -1: closed since (the connection is being torn down)
                self._loop.add_writer(fileno, writable)

        self._loop.call_soon_threadsafe(register)


class MqttTransport:
    """``async with MqttTransport(url, client_id=..., will=(topic, payload)) as link:``"""

    def __init__(
        self,
        url: BrokerUrl,
        *,
        client_id: str,
        will: tuple[str, bytes] | None = None,
        keepalive: int = 20,
        connect_timeout: float = 10.0,
    ) -> None:
        self._url = url
        self._client_id = client_id
        self._will = will
        self._keepalive = keepalive
        self._connect_timeout = connect_timeout
        self._filters: list[str] = []
        self._client: aiomqtt.Client | None = None
        self._lost: asyncio.Future[None] | None = None
        """Done when the current connection is lost."""
        self._inbox = Inbox()
        self._connected = asyncio.Event()
        self._callbacks: list[Callable[[], Awaitable[None]]] = []
        self._task: asyncio.Task[None] | None = None

    def _attempt_timeout(self, attempt: int) -> float:
        """How long the CONNECT of attempt ``attempt`` (from 0 since the last connection) may
        take: one node alone gets the whole ``connect_timeout``."""
        nodes = len(self._url.endpoints)
        if nodes == 1:
            return self._connect_timeout
        return min(self._connect_timeout, _NODE_TIMEOUT * 2.0 ** (attempt // nodes))

    def _new_client(self, host: str, port: int, timeout: float) -> aiomqtt.Client:
        will = (
            aiomqtt.Will(self._will[0], self._will[1], qos=1, retain=True) if self._will else None
        )
        password = self._url.password.get_secret_value() if self._url.password else None
        return SocketSafeClient(
            host,
            port,
            username=self._url.username,
            password=password,
            identifier=self._client_id,
            will=will,
            keepalive=self._keepalive,
            timeout=timeout,  # the CONNECT's; subscribe and publish pass their own
        )

    async def __aenter__(self) -> Self:
        self._task = asyncio.create_task(self._run(), name="mqtt-link")
        try:
            await asyncio.wait_for(self._connected.wait(), self._connect_timeout)
        except TimeoutError as exc:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            msg = f"cannot connect to the broker {self._url}"
            raise TransportError(msg) from exc
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        self._inbox.close()

    async def _run(self) -> None:
        attempt = 0
        first = True
        endpoints = self._url.endpoints
        node = 0
        while True:
            host, port = endpoints[node % len(endpoints)]
            try:
                timeout = self._attempt_timeout(attempt)
                async with self._new_client(host, port, timeout) as client:
                    _no_delay(client)
                    for topic_filter in self._filters:
                        await _resubscribe(client, topic_filter, self._connect_timeout)
                    self._lost = asyncio.get_running_loop().create_future()
                    self._client = client
                    self._connected.set()
                    attempt = 0
                    _LOGGER.info("connected to the broker %s at %s:%d", self._url, host, port)
                    if not first:
                        for callback in self._callbacks:
                            await callback()
                    first = False
                    async for message in client.messages:
                        self._inbox.put(
                            Inbound(
                                topic=message.topic.value,
                                payload=bytes(message.payload)
                                if isinstance(message.payload, bytes | bytearray)
                                else b"",
                                retained=bool(message.retain),
                            )
                        )
            except aiomqtt.MqttError as exc:
                self._client = None
                if self._lost is not None and not self._lost.done():
                    self._lost.set_result(None)
                self._connected.clear()
                node += 1
                attempt += 1
                if len(endpoints) > 1 and attempt % len(endpoints):
                    delay = 0.05  # the next node at once
                else:
                    backoff = 0.5 * 2 ** (attempt // len(endpoints) - 1)
                    delay = min(_BACKOFF_CAP, backoff) * random.uniform(0.5, 1.0)  # noqa: S311
                _LOGGER.warning(
                    "lost the broker %s at %s:%d (%s); retrying in %.1f s",
                    self._url,
                    host,
                    port,
                    exc,
                    delay,
                )
                await asyncio.sleep(delay)

    @property
    def connected(self) -> bool:
        """True while the link to the broker is up."""
        return self._connected.is_set()

    async def subscribe(self, *filters: str) -> None:
        self._filters.extend(filters)
        client = self._client
        if client is not None:
            try:
                for topic_filter in filters:
                    await _subscribe(client, topic_filter, self._connect_timeout)
            except _RefusedError as exc:  # not asked again at each reconnect
                self._filters.remove(exc.topic_filter)
                msg = f"cannot subscribe: {exc}"
                raise TransportError(msg) from exc
            except aiomqtt.MqttError as exc:
                msg = f"cannot subscribe: {exc}"
                raise TransportError(msg) from exc

    async def publish(
        self, topic: str, payload: bytes, *, retain: bool = False, qos: int = 1
    ) -> None:
        client, lost = self._client, self._lost
        if client is None or lost is None:
            msg = f"not connected to the broker {self._url}"
            raise TransportError(msg)
        publishing = asyncio.ensure_future(
            client.publish(topic, payload, qos=qos, retain=retain, timeout=self._connect_timeout)
        )
        try:
            await asyncio.wait((publishing, lost), return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            publishing.cancel()
            raise
        if not publishing.done():  # the connection went first
            publishing.cancel()
            msg = f"lost the broker {self._url} while publishing to {topic}"
            raise TransportError(msg)
        try:
            publishing.result()
        except aiomqtt.MqttError as exc:
            msg = f"cannot publish to {topic}: {exc}"
            raise TransportError(msg) from exc

    def messages(self) -> AsyncIterator[Inbound]:
        return self._inbox.messages()

    def on_reconnect(self, callback: Callable[[], Awaitable[None]]) -> None:
        self._callbacks.append(callback)


async def _subscribe(client: aiomqtt.Client, topic_filter: str, wait: float) -> None:
    """Subscribe at QoS 1; a refusal (SUBACK 0x80) is an error, not a silent deafness: a
    NATS node refuses QoS 1 subscriptions while JetStream has no leader for its MQTT
    streams (seconds after another node died), and the link then tries the next node."""
    codes = await client.subscribe(topic_filter, qos=1, timeout=wait)
    if any(code.is_failure if isinstance(code, ReasonCode) else code >= 0x80 for code in codes):
        raise _RefusedError(topic_filter)


_RESUBSCRIBE_TRIES = 3


async def _resubscribe(client: aiomqtt.Client, topic_filter: str, wait: float) -> None:
    """Subscribe after a (re)connect, asking again on the same connection when refused: a
    NATS node answers SUBACK 0x80 when its JetStream request for the subscription's
    consumer timed out (5 s) for want of a leader, seconds after another node died. A new
    connection would wait for JetStream's leaders as well, and load the session first;
    measured, the link spent 5-10 s more per refusal by moving on. After the last refusal
    the link moves on to the next node."""
    for _ in range(_RESUBSCRIBE_TRIES - 1):
        try:
            await _subscribe(client, topic_filter, wait)
        except _RefusedError:
            _LOGGER.warning("the broker refused the subscription to %s; asking again", topic_filter)
        else:
            return
    await _subscribe(client, topic_filter, wait)


class _RefusedError(aiomqtt.MqttError):
    """SUBACK 0x80."""

    def __init__(self, topic_filter: str) -> None:
        super().__init__(f"the broker refused the subscription to {topic_filter}")
        self.topic_filter = topic_filter


def _no_delay(client: aiomqtt.Client) -> None:
    """Nagle off on the connection (neither aiomqtt nor paho does it): with QoS 1 both ways
    each state publish would wait ~40 ms for the broker's delayed ACK of the PUBACK before."""
    sock = client._client.socket()  # aiomqtt exposes no hook for socket options
    if isinstance(sock, socket.socket):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
