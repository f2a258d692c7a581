"""A real paho-mqtt client for tests: collects messages, waits on conditions."""

from __future__ import annotations

import json
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from hub.protocol import Topics

TOPICS = Topics()


class LoginRefusedError(ConnectionError):
    """The broker answered the CONNECT with a CONNACK that refuses the login."""

    def __init__(self, client_id: str, reason: object) -> None:
        super().__init__(f"{client_id}: login refused by CONNACK: {reason}")
        self.reason = reason


class NoConnackError(TimeoutError):
    """No CONNACK came: the broker is down, silent, or closed the connection without one.
    Never a refusal."""


@dataclass(frozen=True)
class Message:
    topic: str
    payload: bytes
    retain: bool
    qos: int

    def json(self) -> Any:
        return json.loads(self.payload)


def _no_delay(_client: paho.Client, _userdata: object, sock: object) -> None:
    """paho leaves Nagle on: with QoS 1 both ways that adds ~40 ms (delayed ACK) per round.
    Over WebSocket paho hands over its wrapper; the TCP socket is inside."""
    raw = getattr(sock, "_socket", sock)
    if isinstance(raw, socket.socket):
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class TestClient:
    """``with TestClient(port, "alice") as c:`` connected, subscribed to its reply topic."""

    __test__ = False  # not a pytest class

    def __init__(
        self,
        port: int,
        client_id: str,
        *,
        presence: bool = False,
        keepalive: int = 30,
        topics: Topics = TOPICS,
        password: str | None = None,
        username: str | None = None,
        websocket_path: str | None = None,
    ) -> None:
        self.port = port
        self.client_id = client_id
        self.topics = topics
        self.keepalive = keepalive
        self.messages: list[Message] = []
        self._cond = threading.Condition()
        self._presence = presence
        self._filters: list[tuple[str, int]] = []
        self._connected = threading.Event()
        self.disconnected = threading.Event()
        """Set when the broker's connection ends (paho then keeps trying to reconnect)."""
        self._client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            transport="websockets" if websocket_path is not None else "tcp",
        )
        if websocket_path is not None:  # MQTT over WebSocket: ``port`` is the HTTP port
            self._client.ws_set_options(path=websocket_path)
        self._client.on_message = self._on_message
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = lambda *_args: self.disconnected.set()
        self._client.reconnect_delay_set(min_delay=1, max_delay=1)
        self._client.on_socket_open = _no_delay
        self.connack: object = None
        if password is not None:
            self._client.username_pw_set(username or client_id, password)
        if presence:
            self._client.will_set(
                topics.client_presence(client_id), b'{"state":"offline"}', qos=1, retain=True
            )

    def _on_connect(
        self, _c: paho.Client, _u: object, _f: object, reason: object, _p: object
    ) -> None:
        self.connack = reason
        if self._connected.is_set():  # a reconnect: a clean session lost the subscriptions
            for topic_filter, qos in self._filters:
                self._client.subscribe(topic_filter, qos)
        self._connected.set()

    def _on_message(self, _c: paho.Client, _u: object, msg: paho.MQTTMessage) -> None:
        with self._cond:
            self.messages.append(Message(msg.topic, bytes(msg.payload), bool(msg.retain), msg.qos))
            self._cond.notify_all()

    def __enter__(self) -> Self:
        self._client.connect("127.0.0.1", self.port, keepalive=self.keepalive)
        self._client.loop_start()
        if not self._connected.wait(10):
            self._client.loop_stop()
            msg = f"{self.client_id}: no CONNACK from port {self.port} in 10 s"
            raise NoConnackError(msg)
        if getattr(self.connack, "is_failure", True):
            self._client.loop_stop()
            raise LoginRefusedError(self.client_id, self.connack)
        self.subscribe(self.topics.client_reply(self.client_id))
        if self._presence:
            self.publish(
                self.topics.client_presence(self.client_id), {"state": "online"}, retain=True
            )
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()

    def subscribe(self, topic_filter: str, qos: int = 1) -> None:
        done = threading.Event()
        self._client.on_subscribe = lambda *_a: done.set()
        self._client.subscribe(topic_filter, qos)
        self._filters.append((topic_filter, qos))
        if not done.wait(10):
            msg = f"no SUBACK for {topic_filter}"
            raise TimeoutError(msg)

    def publish(
        self, topic: str, payload: bytes | dict[str, Any], *, retain: bool = False, qos: int = 1
    ) -> None:
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        deadline = time.monotonic() + 10
        while True:
            try:
                self._client.publish(topic, data, qos=qos, retain=retain).wait_for_publish(10)
                return
            except RuntimeError:  # not connected: paho is reconnecting by itself
                if time.monotonic() > deadline:
                    raise
            while not self._client.is_connected() and time.monotonic() < deadline:
                time.sleep(0.01)

    # --- waiting -------------------------------------------------------------------------
    def wait_for(
        self, predicate: Callable[[Message], bool], timeout: float = 10.0, *, after: int = 0
    ) -> Message:
        """The first message (from index ``after``) that satisfies ``predicate``."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for message in self.messages[after:]:
                    if predicate(message):
                        return message
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    seen = [m.topic for m in self.messages[-10:]]
                    msg = f"{self.client_id}: no matching message in {timeout} s; last: {seen}"
                    raise TimeoutError(msg)
                self._cond.wait(remaining)

    def on_topic(self, topic: str, timeout: float = 10.0, *, after: int = 0) -> Message:
        return self.wait_for(lambda m: m.topic == topic, timeout, after=after)

    def state(self, game: str = "main", *, min_version: int = 0, timeout: float = 10.0) -> Any:
        """The newest snapshot of ``game`` seen (subscribing first if needed) at >= min_version."""
        topic = self.topics.game_state(game)
        if not any(m.topic == topic for m in self.messages):
            self.subscribe(topic)

        def fresh(m: Message) -> bool:
            return m.topic == topic and m.json()["version"] >= min_version

        self.wait_for(fresh, timeout)
        with self._cond:
            return [m for m in self.messages if m.topic == topic][-1].json()

    def send(
        self,
        payload: dict[str, Any] | bytes,
        game: str = "main",
        *,
        topic: str | None = None,
        timeout: float = 10.0,
    ) -> Any:
        """Publish a command and return the reply (matched by request_id where possible)."""
        reply_topic = self.topics.client_reply(self.client_id)
        with self._cond:
            mark = len(self.messages)
        request_id: str | None = None
        if isinstance(payload, dict) and "request_id" not in payload:
            request_id = uuid.uuid4().hex[:12]
            payload = {**payload, "request_id": request_id}
        elif isinstance(payload, dict):
            request_id = payload["request_id"]
        self.publish(topic or self.topics.game_command(game, self.client_id), payload)

        def is_reply(m: Message) -> bool:
            return m.topic == reply_topic and (
                request_id is None or m.json().get("request_id") == request_id
            )

        return self.wait_for(is_reply, timeout, after=mark).json()

    def drop(self) -> None:
        """Vanish without DISCONNECT (the socket closes; the broker sends the will)."""
        sock = self._client.socket()
        self._client.loop_stop()
        if sock is not None:
            sock.close()


def refused_login(
    port: int,
    client_id: str,
    *,
    username: str | None = None,
    password: str | None = None,
    websocket_path: str | None = None,
    timeout: float = 15.0,
) -> int:
    """Log in and return the refusing CONNACK's reason code (non-zero).

    Only a real CONNACK with a failure code is a refusal: an accepted login raises
    AssertionError; a dead port, a dropped connection or silence raise (ConnectionError,
    NoConnackError), so a refusal test cannot pass against a hub that is down. Over a
    WebSocket (``websocket_path``, ``port`` is then the HTTP port) the same holds: the
    refusal is the CONNACK inside the upgraded connection."""
    answered = threading.Event()
    dropped = threading.Event()
    reasons: list[Any] = []
    client = paho.Client(
        CallbackAPIVersion.VERSION2,
        client_id=client_id,
        transport="websockets" if websocket_path is not None else "tcp",
    )
    if websocket_path is not None:
        client.ws_set_options(path=websocket_path)
    if username is not None or password is not None:
        client.username_pw_set(username if username is not None else client_id, password)

    def on_connect(_c: paho.Client, _u: object, _f: object, reason: Any, _p: object) -> None:
        reasons.append(reason)
        answered.set()

    client.on_connect = on_connect
    client.on_disconnect = lambda *_a: dropped.set()
    client.connect("127.0.0.1", port, keepalive=30)  # a dead port raises here
    client.loop_start()
    try:
        deadline = time.monotonic() + timeout
        while not answered.wait(0.05):
            if dropped.is_set() and not answered.is_set():
                msg = f"{client_id}: the connection closed without a CONNACK (port {port})"
                raise NoConnackError(msg)
            if time.monotonic() > deadline:
                msg = f"{client_id}: no CONNACK from port {port} in {timeout} s"
                raise NoConnackError(msg)
        reason = reasons[0]
        assert reason.is_failure, f"{client_id}: the login was accepted ({reason})"
        return int(reason.value)
    finally:
        client.loop_stop()
        client.disconnect()
