"""Delivery fixes: delivered QoS, one copy per subscriber, offline queues, bounded backlogs."""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import Any

from amqtt.broker import Broker
from amqtt.contexts import Action
from amqtt.mqtt.protocol.broker_handler import BrokerProtocolHandler
from amqtt.session import Session

from hub.broker.guard import GuardedConnection, connection_of
from hub.broker.limits import Limits

__all__ = ["DeliveryBroker", "deliver"]

_LOGGER = logging.getLogger(__name__)
_PUBLISH_QOS = "hub.broker.publish_qos"
"""Session attribute: QoS of the client PUBLISH being routed (amqtt drops it on the way)."""


async def deliver(
    handler: BrokerProtocolHandler,
    topic: str,
    data: bytes | bytearray,
    qos: int,
    *,
    retain: bool = False,
) -> None:
    """``handler.mqtt_publish``, logging a missing acknowledgement in one line.

    amqtt gives up after a hard-coded 5 s without PUBACK/PUBREC/PUBCOMP and raises, which its
    broadcast loop logs as "Task failed and will be skipped" with a traceback
    (Yakifo/amqtt#391).
    """
    try:
        await handler.mqtt_publish(topic, data, qos, retain=retain)
    except TimeoutError as exc:
        _LOGGER.info("delivery on %s not acknowledged: %s", topic, exc)


class DeliveryBroker(Broker):  # type: ignore[misc]  # amqtt ships no type information
    """Routes messages at min(publish, subscription) QoS, once per client, within bounds."""

    limits: Limits

    async def _handle_message_delivery(
        self,
        client_session: Session,
        handler: BrokerProtocolHandler,
        wait_deliver: asyncio.Future[Any],
    ) -> bool:
        # amqtt routes a client's PUBLISH without its QoS; keep it for _broadcast_message
        # (same task, and the client's next PUBLISH waits until this one is routed)
        message = wait_deliver.result()
        if message is not None:
            client_session.attributes[_PUBLISH_QOS] = message.qos
        try:
            result: bool = await super()._handle_message_delivery(
                client_session, handler, wait_deliver
            )
        finally:
            client_session.attributes.pop(_PUBLISH_QOS, None)
        return result

    async def _broadcast_message(
        self,
        session: Session | None,
        topic: str | None,
        data: bytes | bytearray | None,
        force_qos: int | None = None,
    ) -> None:
        # amqtt sends client messages at the subscription's QoS and forces an explicit QoS
        # (wills, internal_message_broadcast) on every subscriber. Here the QoS travels as
        # the publish QoS and _run_broadcast delivers min(publish, subscription)
        # [MQTT-3.8.4-6]. None (BrokerContext.broadcast_message without qos): subscription's.
        qos = force_qos
        if qos is None and session is not None:
            qos = session.attributes.get(_PUBLISH_QOS)
        await super()._broadcast_message(session, topic, data, qos)

    async def _run_broadcast(self, running_tasks: deque[asyncio.Task[Any]]) -> None:
        # Replaces amqtt's: it delivers at the subscription QoS, once per matching filter (a
        # client holding "a/#" and "a/+" gets two copies), queues without bound for offline
        # sessions and starts a task per delivery however far behind the client is.
        broadcast: dict[str, Any] = await self._broadcast_queue.get()
        topic: str = broadcast["topic"]
        data: bytes | bytearray = broadcast["data"]
        publish_qos: int | None = broadcast.get("qos")
        for session, subscription_qos in self._subscribers(topic):
            qos = subscription_qos if publish_qos is None else min(publish_qos, subscription_qos)
            if not await self._topic_filtering(session, topic=topic, action=Action.RECEIVE):
                continue
            if session.transitions.state != "connected":
                if qos > 0 and not session.clean_session and not session.is_anonymous:
                    await self._queue_offline(broadcast, qos, session)
                continue
            handler = self._get_handler(session)
            if handler is not None:
                self._start_delivery(running_tasks, handler, topic, data, qos)

    def _subscribers(self, topic: str) -> list[tuple[Session, int]]:
        """Each subscribed session once, with the highest QoS of its matching filters.

        One copy at the maximum QoS is what MQTT-3.3.5-1 requires (more are optional).
        """
        found: dict[str, tuple[Session, int]] = {}
        for topic_filter, subscriptions in self._subscriptions.items():
            if not self._matches(topic, topic_filter):
                continue
            for session, qos in subscriptions:
                known = found.get(session.client_id)
                if known is None or qos > known[1]:
                    found[session.client_id] = (session, qos)
        return list(found.values())

    async def _queue_offline(self, broadcast: dict[str, Any], qos: int, session: Session) -> None:
        # amqtt's offline queue has no bound: an inactive session grows without limit until
        # it expires (Yakifo/amqtt#14); keep the oldest messages, drop newer ones
        if session.retained_messages.qsize() >= self.limits.max_queued_messages:
            _LOGGER.info(
                "offline queue of %s is full (%d): dropping a message on %s",
                session.client_id,
                self.limits.max_queued_messages,
                broadcast["topic"],
            )
            return
        await self._retain_broadcast_message(broadcast, qos, session)

    def _start_delivery(
        self,
        running_tasks: deque[asyncio.Task[Any]],
        handler: BrokerProtocolHandler,
        topic: str,
        data: bytes | bytearray,
        qos: int,
    ) -> None:
        connection = connection_of(handler)
        if connection is not None and not connection.reserve_outgoing():
            return
        task = asyncio.ensure_future(deliver(handler, topic, data, qos))
        if connection is not None:
            task.add_done_callback(_Release(connection))
        running_tasks.append(task)

    async def _publish_session_retained_messages(self, session: Session) -> None:
        # Messages queued while the session was offline are not retained messages:
        # RETAIN 0 [MQTT-3.3.1-9]; amqtt sends them with RETAIN 1.
        handler = self._get_handler(session)
        if handler is None:
            return
        queued = []
        while not session.retained_messages.empty():
            queued.append(session.retained_messages.get_nowait())
        results = await asyncio.gather(
            *(deliver(handler, m.topic, m.data, m.qos) for m in queued), return_exceptions=True
        )
        for result in results:
            if isinstance(result, BaseException):
                _LOGGER.warning("redelivery to %s failed: %r", session.client_id, result)


class _Release:
    """Task done-callback giving a delivery's slot back to its connection."""

    def __init__(self, connection: GuardedConnection) -> None:
        self._connection = connection

    def __call__(self, _task: asyncio.Task[Any]) -> None:
        self._connection.release_outgoing()
