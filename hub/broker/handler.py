"""One connected client's MQTT conversation, packet by packet, without a task per packet.

Replaces amqtt's ``BrokerProtocolHandler`` and the broker's per-client message loop
(``Broker._client_message_loop``, ``_handle_message_delivery``, ``_handle_subscription``,
``_handle_unsubscription``). amqtt starts a task per received packet and per delivery,
routes every PUBLISH through two queues and ``asyncio.wait`` on four waiters, and
acknowledges deliveries by awaiting a future per QoS 1 message (with a 5 s timer each).

Here packets are handled in the order they arrive, synchronously when nothing needs
waiting for (a PUBLISH whose ACL verdicts are cached, an acknowledgement, a ping); the first
packet that does (an uncached ACL check, a SUBSCRIBE) starts one worker task, which takes
the packets queued behind it in order and ends when none are left. Acknowledgements and
pings never wait behind it. Deliveries go out through ``deliver``: QoS 1/2 ones are kept
in ``session.inflight_out`` until acknowledged, and resent when a persistent session
resumes [MQTT-4.4.0-1].
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from typing import Protocol

from amqtt.mqtt.protocol.broker_handler import BrokerProtocolHandler

from hub.broker.connection import Connection, Packet
from hub.broker.encoding import EncodedPublish
from hub.broker.limits import Limits
from hub.broker.packets import (
    PINGRESP,
    MalformedPacket,
    decode_subscribe,
    decode_unsubscribe,
    packet_id,
    puback,
    pubcomp,
    pubrec,
    pubrel,
    unsuback,
)
from hub.broker.session import HubSession, Outgoing

__all__ = ["HubHandler", "Router"]

_LOGGER = logging.getLogger(__name__)
_PUBLISH, _PUBACK, _PUBREC, _PUBREL, _PUBCOMP = 3, 4, 5, 6, 7
_SUBSCRIBE, _UNSUBSCRIBE, _PINGREQ, _DISCONNECT = 8, 10, 12, 14
_MAX_PACKET_ID = 65_535
_monotonic = time.monotonic
_BACKLOG_PAUSE = 256
"""Packets waiting behind the worker before the client's reading is paused."""


class Router(Protocol):
    """What a handler needs from the broker (``delivery.DeliveryBroker`` implements it)."""

    def route_now(
        self, source: HubSession, topic: str, payload: bytes, qos: int, retain: bool
    ) -> bool:
        """Route a client's PUBLISH at once if every ACL verdict it needs is cached
        (True), else do nothing (False)."""
        ...

    async def route_client_publish(
        self, source: HubSession, topic: str, payload: bytes, qos: int, retain: bool
    ) -> None:
        """Check the PUBLISH ACL (and any RECEIVE verdicts) and route."""

    async def subscribe_client(
        self, handler: HubHandler, pid: int, topics: list[tuple[str, int]]
    ) -> None:
        """Add subscriptions, SUBACK, then the retained messages they match."""

    def unsubscribe_client(self, session: HubSession, filters: list[str]) -> None: ...


class HubHandler(BrokerProtocolHandler):  # type: ignore[misc]  # amqtt ships no type information
    """The handler amqtt keeps in ``Broker._sessions`` next to each session.

    ``BrokerProtocolHandler.__init__`` is not run: its queues, events and lock are what this
    class replaces. The broker calls only ``stop()`` on it (``_stop_handler``).
    """

    def __init__(
        self,
        router: Router,
        session: HubSession,
        connection: Connection | None,
        limits: Limits,
    ) -> None:
        self.router = router
        self.session = session
        self.connection = connection
        self.logger = _LOGGER
        self.reader = None
        self.writer = None
        self._max_pending = limits.max_queued_messages
        self._ack_timeout = limits.ack_timeout
        self._pending = 0  # live QoS 1/2 deliveries not yet acknowledged
        self._dropped = 0  # deliveries dropped since the bound was reached
        self._last_ack = _monotonic()  # of a counted delivery (or when the handler started)
        self._backlog: deque[Packet] | None = None  # packets behind the worker
        self._worker: asyncio.Task[None] | None = None
        self._finished = False  # DISCONNECT received or connection aborted

    # --- lifecycle -------------------------------------------------------------------------
    def open(self) -> None:
        """Go live: resend unacknowledged deliveries, then the messages queued while the
        session was offline (with RETAIN 0 [MQTT-3.3.1-9]), then take the client's packets."""
        session = self.session
        connection = self.connection
        assert connection is not None
        for pid, outgoing in list(session.inflight_out.items()):
            if not isinstance(outgoing, Outgoing):
                continue
            outgoing.counted = False
            if outgoing.released:
                connection.send(pubrel(pid))
            else:
                connection.send(outgoing.message.variant(outgoing.qos, pid, dup=True))
        queue = session.retained_messages
        while not queue.empty():
            message = queue.get_nowait()
            self.deliver(EncodedPublish(message.topic, bytes(message.data)), message.qos or 0)
        session.handler = self
        connection.attach(self)

    async def stop(self) -> None:
        """amqtt's ``_stop_handler``: the connection ends (at shutdown, session cleanup)."""
        self.close()

    def close(self) -> None:
        """Stop delivering to this connection and close it after what is queued."""
        if self.session.handler is self:
            self.session.handler = None
        if self._worker is not None and self._worker is not asyncio.current_task():
            self._worker.cancel()
        if self.connection is not None:
            self.connection.detach()
            self.connection.close()

    # --- deliveries ------------------------------------------------------------------------
    def deliver(self, message: EncodedPublish, qos: int) -> None:
        """Send one routed message (RETAIN 0) at ``qos``."""
        connection = self.connection
        if connection is None:
            return
        if not qos:
            connection.send(message.packet(0))
            return
        if self._pending >= self._max_pending or len(self.session.inflight_out) >= _MAX_PACKET_ID:
            if _monotonic() - self._last_ack > self._ack_timeout:
                # acknowledges nothing any more (stopped reading, or broken): gone
                connection.abort(
                    f"{self._pending} deliveries not acknowledged, none for {self._ack_timeout:g} s"
                )
                return
            # a client that reads but acknowledges slower than it gets messages (e.g. one
            # flooding commands, each answered): drop, like Mosquitto past its queue, rather
            # than hold ever more in flight (amqtt gave up on each after 5 s, with a
            # traceback: Yakifo/amqtt#391)
            self._dropped += 1
            if self._dropped == 1:
                _LOGGER.warning(
                    "%s has %d deliveries not acknowledged: dropping QoS %d messages to it "
                    "until it catches up",
                    self.session.client_id,
                    self._pending,
                    qos,
                )
            return
        pid = self._packet_id()
        self.session.inflight_out[pid] = Outgoing(message, qos, counted=True)
        self._pending += 1
        connection.send(message.packet(qos, pid))

    def deliver_retained(self, message: EncodedPublish, qos: int) -> None:
        """Send a retained message (RETAIN 1) for a new subscription; not counted toward the
        client's bound (a burst the client asked for)."""
        connection = self.connection
        if connection is None:
            return
        pid = 0
        if qos:
            if len(self.session.inflight_out) >= self._max_pending:
                return  # a client that acknowledges nothing gets no more
            pid = self._packet_id()
            self.session.inflight_out[pid] = Outgoing(message, qos, counted=False)
        connection.send(message.variant(qos, pid, retain=True))

    def send(self, packet: bytes) -> None:
        if self.connection is not None:
            self.connection.send(packet)

    def hurry(self) -> None:
        """Have this client's pending packets written before other clients'."""
        if self.connection is not None:
            self.connection.hurry()

    def _packet_id(self) -> int:
        """The next packet identifier not in flight (amqtt's ``Session.next_packet_id`` also
        searches ``inflight_in``, which only its own handler fills). Callers keep fewer than
        65,535 deliveries in flight."""
        session = self.session
        inflight = session.inflight_out
        pid: int = session._packet_id
        while True:
            pid = pid % _MAX_PACKET_ID + 1
            if pid not in inflight:
                session._packet_id = pid
                return pid

    def acknowledged(self, pid: int) -> None:
        """PUBACK or PUBCOMP: the delivery ``pid`` is done."""
        outgoing = self.session.inflight_out.pop(pid, None)
        if isinstance(outgoing, Outgoing) and outgoing.counted:
            self._last_ack = _monotonic()
            self._pending -= 1
            if self._dropped and self._pending < self._max_pending // 2:
                _LOGGER.info(
                    "%s caught up: %d messages were dropped", self.session.client_id, self._dropped
                )
                self._dropped = 0

    # --- packets ---------------------------------------------------------------------------
    def packets_received(self, packets: list[Packet]) -> None:
        """Handle packets in order (called by the connection as they arrive)."""
        for first, body in packets:
            if self._finished:
                return
            kind = first >> 4
            if kind == _PUBACK:
                self.acknowledged(packet_id(body))
            elif kind == _PINGREQ:
                self.send(PINGRESP)
            elif kind == _PUBREC:
                self._pubrec(packet_id(body))
            elif kind == _PUBCOMP:
                self.acknowledged(packet_id(body))
            elif self._backlog is not None:
                self._backlog.append((first, body))
                if len(self._backlog) == _BACKLOG_PAUSE and self.connection is not None:
                    self.connection.pause_reading()
            else:
                try:
                    done = self._handle_now(first, body)
                except MalformedPacket as exc:
                    self._malformed(exc)
                    return
                if not done:
                    self._backlog = deque()
                    self._worker = asyncio.ensure_future(self._work(first, body))

    def _pubrec(self, pid: int) -> None:
        outgoing = self.session.inflight_out.get(pid)
        if isinstance(outgoing, Outgoing):
            outgoing.released = True
        self.send(pubrel(pid))

    def _handle_now(self, first: int, body: bytes) -> bool:
        """Handle a packet that needs no waiting; False (and nothing done) otherwise."""
        kind = first >> 4
        if kind == _PUBLISH:
            return self._publish(first, body)
        if kind == _PUBREL:
            return self._pubrel(packet_id(body))
        if kind == _UNSUBSCRIBE:
            pid, filters = decode_unsubscribe(body)
            self.router.unsubscribe_client(self.session, filters)
            self.send(unsuback(pid))
            return True
        if kind == _DISCONNECT:
            self._finished = True
            if self.connection is not None:
                self.connection.disconnect_received = True
                self.connection.close()
            return True
        return False  # SUBSCRIBE

    async def _handle_later(self, first: int, body: bytes) -> None:
        kind = first >> 4
        if kind == _PUBLISH:
            await self._publish_later(first, body)
        elif kind == _PUBREL:
            await self._pubrel_later(packet_id(body))
        elif kind == _SUBSCRIBE:
            pid, topics = decode_subscribe(body)
            await self.router.subscribe_client(self, pid, topics)

    async def _work(self, first: int, body: bytes) -> None:
        """The worker: this packet, then those queued behind it, in order."""
        backlog = self._backlog
        assert backlog is not None
        try:
            await self._handle_later(first, body)
            while backlog and not self._finished:
                first, body = backlog.popleft()
                if len(backlog) == _BACKLOG_PAUSE // 2 and self.connection is not None:
                    self.connection.resume_reading()
                if not self._handle_now(first, body):
                    await self._handle_later(first, body)
        except MalformedPacket as exc:
            self._malformed(exc)
        finally:
            self._backlog = None
            self._worker = None
            if self.connection is not None:
                self.connection.resume_reading()

    def _malformed(self, exc: MalformedPacket) -> None:
        self._finished = True
        if self.connection is not None:
            self.connection.abort(f"malformed packet: {exc}")

    # --- PUBLISH from the client -------------------------------------------------------------
    def _publish(self, first: int, body: bytes) -> bool:
        qos = (first >> 1) & 0x03
        end = 2 + ((body[0] << 8) | body[1])  # lengths checked by the framing
        try:
            topic = body[2:end].decode("utf-8")
        except UnicodeDecodeError as exc:
            raise MalformedPacket("PUBLISH topic is not valid UTF-8 [MQTT-1.5.3-1]") from exc
        if qos == 0:
            return self.router.route_now(self.session, topic, body[end:], 0, bool(first & 0x01))
        pid = (body[end] << 8) | body[end + 1]
        payload = body[end + 2 :]
        if qos == 2:
            # stored until PUBREL, routed then (once, whatever duplicates arrive) [MQTT-4.3.3-2]
            self.session.incoming.setdefault(pid, (topic, payload, bool(first & 0x01)))
            self.send(pubrec(pid))
            return True
        if not self.router.route_now(self.session, topic, payload, 1, bool(first & 0x01)):
            return False
        self.send(puback(pid))
        return True

    async def _publish_later(self, first: int, body: bytes) -> None:
        qos = (first >> 1) & 0x03
        end = 2 + ((body[0] << 8) | body[1])
        topic = body[2:end].decode("utf-8")  # checked by _publish before
        payload = body[end + 2 :] if qos else body[end:]
        await self.router.route_client_publish(
            self.session, topic, payload, qos, bool(first & 0x01)
        )
        if qos == 1:
            self.send(puback((body[end] << 8) | body[end + 1]))

    def _pubrel(self, pid: int) -> bool:
        stored = self.session.incoming.get(pid)
        if stored is not None:
            topic, payload, retain = stored
            if not self.router.route_now(self.session, topic, payload, 2, retain):
                return False
            del self.session.incoming[pid]
        self.send(pubcomp(pid))
        return True

    async def _pubrel_later(self, pid: int) -> None:
        stored = self.session.incoming.pop(pid, None)
        if stored is not None:
            topic, payload, retain = stored
            await self.router.route_client_publish(self.session, topic, payload, 2, retain)
        self.send(pubcomp(pid))
