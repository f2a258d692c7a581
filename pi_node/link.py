"""The node's MQTT link: a thin adapter over paho-mqtt.

One thread owns the connection: it connects, runs paho's network loop, and when the
connection is lost or cannot be made, waits (capped exponential backoff with jitter) and
tries again, forever, until ``close()``. paho's callbacks only convert what they get into
``LinkEvent`` values and hand them to ``sink`` (which must be thread-safe and must not
block); everything else happens on the caller's side:

- on ``LinkUp`` the caller calls ``establish()`` (subscribe, publish retained ``online``);
- ``publish()`` sends a message if connected;
- ``close()`` publishes retained ``offline``, disconnects cleanly (a clean DISCONNECT
  suppresses the last will, hence the explicit ``offline``) and stops the thread.

The last will is retained ``{"state":"offline"}`` QoS 1 on the node's presence topic.
"""

from __future__ import annotations

import logging
import random
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from pydantic import SecretStr

from hub.protocol import Presence, encode

__all__ = [
    "Backoff",
    "Inbound",
    "Link",
    "LinkDown",
    "LinkEvent",
    "LinkOptions",
    "LinkRefused",
    "LinkUp",
]

_LOGGER = logging.getLogger(__name__)
_STEADY_SESSION = 10.0
"""Seconds a connection must last for the reconnect backoff to start over."""
ONLINE = encode(Presence(state="online"))
OFFLINE = encode(Presence(state="offline"))


@dataclass(frozen=True, slots=True)
class LinkUp:
    """The broker accepted the connection (CONNACK 0)."""


@dataclass(frozen=True, slots=True)
class LinkRefused:
    """The broker refused the login (bad username or password, say)."""

    reason: str


@dataclass(frozen=True, slots=True)
class LinkDown:
    """No connection: the connection was lost (``unreachable`` False), or the broker could
    not be reached at all (``unreachable`` True). A retry follows."""

    reason: str
    unreachable: bool


@dataclass(frozen=True, slots=True)
class Inbound:
    """A message the broker delivered, untouched (parsed by the node, at its edge)."""

    topic: str
    payload: bytes
    retain: bool


LinkEvent = LinkUp | LinkRefused | LinkDown | Inbound
Sink = Callable[[LinkEvent], None]


@dataclass(frozen=True, slots=True)
class Backoff:
    """Capped exponential backoff with "equal jitter": attempt n waits between half and
    all of ``min(cap, initial * 2**n)`` seconds."""

    initial: float
    cap: float

    def delay(self, attempt: int, rand: Callable[[], float] = random.random) -> float:
        ceiling = min(self.cap, self.initial * 2.0 ** min(attempt, 32))
        jitter: float = rand()
        return ceiling / 2 + jitter * ceiling / 2


@dataclass(frozen=True, slots=True)
class LinkOptions:
    host: str
    port: int
    username: str
    """The node's identity; also its MQTT client id."""
    password: SecretStr
    presence_topic: str
    subscriptions: tuple[str, ...]
    keepalive: int = 15
    backoff: Backoff = Backoff(0.5, 30.0)
    connect_timeout: float = 3.0


class Link:
    """``with Link(options, sink) as link:`` connects in the background, forever."""

    def __init__(self, options: LinkOptions, sink: Sink) -> None:
        self.options = options
        self._sink = sink
        self._client: paho.Client | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()

    # --- paho callbacks: convert and hand over, nothing else ------------------------------
    def _on_connect(
        self, _client: paho.Client, _userdata: object, _flags: object, reason: Any, _props: object
    ) -> None:
        self._sink(LinkRefused(str(reason)) if reason.is_failure else LinkUp())

    def _on_disconnect(
        self, _client: paho.Client, _userdata: object, _flags: object, reason: Any, _props: object
    ) -> None:
        self._sink(LinkDown(str(reason), unreachable=False))

    def _on_message(self, _client: paho.Client, _userdata: object, msg: paho.MQTTMessage) -> None:
        self._sink(Inbound(msg.topic, bytes(msg.payload), bool(msg.retain)))

    @staticmethod
    def _on_socket_open(_client: paho.Client, _userdata: object, sock: object) -> None:
        # paho leaves Nagle on: with QoS 1 each way that adds ~40 ms (delayed ACK) per press
        if isinstance(sock, socket.socket):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    # --- lifecycle -------------------------------------------------------------------------
    def __enter__(self) -> Self:
        opts = self.options
        client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=opts.username,
            clean_session=True,
            protocol=paho.MQTTv311,
        )
        client.username_pw_set(opts.username, opts.password.get_secret_value())
        client.will_set(opts.presence_topic, OFFLINE, qos=1, retain=True)
        client.connect_timeout = opts.connect_timeout
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_socket_open = self._on_socket_open
        client.connect_async(opts.host, opts.port, keepalive=opts.keepalive)
        self._client = client
        self._stopping.clear()
        self._thread = threading.Thread(
            target=self._run, args=(client,), name="pi-node-link", daemon=True
        )
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self, timeout: float = 1.5) -> None:
        """Publish retained offline, disconnect cleanly, stop; at most ~``timeout`` s."""
        client, thread = self._client, self._thread
        if client is None or thread is None:
            return
        started = time.monotonic()
        if client.is_connected():
            info = client.publish(self.options.presence_topic, OFFLINE, qos=1, retain=True)
            try:
                info.wait_for_publish(timeout / 2)
            except (RuntimeError, ValueError) as exc:
                _LOGGER.debug("offline presence not confirmed: %s", exc)
        client.disconnect()
        self._stopping.set()
        thread.join(max(0.1, timeout - (time.monotonic() - started)))
        if thread.is_alive():
            _LOGGER.warning("the MQTT link did not stop in %.1f s", timeout)
        # Break the client <-> link cycle, so the client is freed (and paho closes its
        # sockets) as soon as the thread lets go of it, not by a later garbage collection.
        client.on_connect = client.on_disconnect = client.on_message = None
        self._client = None
        self._thread = None

    # --- used by the node --------------------------------------------------------------
    @property
    def connected(self) -> bool:
        return self._client is not None and self._client.is_connected()

    def establish(self) -> None:
        """After each ``LinkUp``: subscribe (QoS 1) and announce retained ``online``."""
        client = self._client
        if client is None:
            return
        opts = self.options
        result, _mid = client.subscribe([(topic, 1) for topic in opts.subscriptions])
        if result != MQTTErrorCode.MQTT_ERR_SUCCESS:
            _LOGGER.debug("subscribe not sent: %s", paho.error_string(result))
        info = client.publish(opts.presence_topic, ONLINE, qos=1, retain=True)
        if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            _LOGGER.debug("presence not sent: %s", paho.error_string(info.rc))

    def publish(self, topic: str, payload: bytes, *, qos: int = 1) -> bool:
        """Send a (non-retained) message now; False when not connected."""
        client = self._client
        if client is None or not client.is_connected():
            return False
        info = client.publish(topic, payload, qos=qos)
        return info.rc == MQTTErrorCode.MQTT_ERR_SUCCESS

    # --- the connection thread ---------------------------------------------------------
    def _run(self, client: paho.Client) -> None:
        attempt = 0
        while not self._stopping.is_set():
            started = time.monotonic()
            try:
                was_up = self._session(client)
            except OSError as exc:  # refused, unreachable, DNS, timeout
                self._sink(LinkDown(exc.strerror or str(exc) or type(exc).__name__, True))
                was_up = False
            except Exception:  # a bug must not end the reconnecting
                _LOGGER.exception("the MQTT link failed; reconnecting")
                was_up = False
            if was_up and time.monotonic() - started >= _STEADY_SESSION:
                attempt = 0  # a short session (another node taking our client id over, say)
                # keeps backing off, so two nodes with one identity stop kicking every second
            if self._stopping.is_set():
                break
            delay = self.options.backoff.delay(attempt)
            attempt += 1
            _LOGGER.debug("reconnecting in %.2f s (attempt %d)", delay, attempt)
            self._stopping.wait(delay)

    def _session(self, client: paho.Client) -> bool:
        """One connection, from CONNECT until it ends; True if the broker accepted it."""
        client.reconnect()
        was_up = False
        drain_until: float | None = None
        result = MQTTErrorCode.MQTT_ERR_SUCCESS
        while result == MQTTErrorCode.MQTT_ERR_SUCCESS:
            result = client.loop(timeout=0.1 if drain_until else 0.5)
            was_up = was_up or client.is_connected()
            if self._stopping.is_set():
                drain_until = drain_until or time.monotonic() + 1.0
                if time.monotonic() > drain_until:
                    break
        return was_up
