"""Retained messages go to a client's new subscriptions only, within its ACL."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from amqtt.broker import Broker
from amqtt.contexts import Action
from amqtt.mqtt.protocol.broker_handler import BrokerProtocolHandler
from amqtt.session import Session

from hub.broker.delivery import deliver

__all__ = ["RetainedBroker"]

_LOGGER = logging.getLogger(__name__)
_SUBSCRIBING = "hub.broker.subscribing"
"""Session attribute set while amqtt handles the session's SUBSCRIBE packet."""


class RetainedBroker(Broker):  # type: ignore[misc]  # amqtt ships no type information
    """Sends retained messages for a SUBSCRIBE only, never on CONNECT."""

    async def _handle_subscription(
        self,
        client_session: Session,
        handler: BrokerProtocolHandler,
        subscribe_waiter: asyncio.Future[Any],
    ) -> None:
        client_session.attributes[_SUBSCRIBING] = True
        try:
            await super()._handle_subscription(client_session, handler, subscribe_waiter)
        finally:
            client_session.attributes.pop(_SUBSCRIBING, None)

    async def _publish_retained_messages_for_subscription(
        self, subscription: tuple[str, int], session: Session
    ) -> None:
        # amqtt 0.12.1 also calls this on every CONNECT, for the filters of *all* sessions
        # (broker.py, _handle_client_session): a client that subscribed to nothing received
        # other clients' retained topics past the ACL, and a resumed session got its retained
        # messages again (cf. Yakifo/amqtt#14, "replay and retained message logic need
        # work"). Retained messages belong to new subscriptions only [MQTT-3.3.1-6].
        if not session.attributes.get(_SUBSCRIBING):
            return
        handler = self._get_handler(session)
        if handler is None:
            return
        topic_filter, subscription_qos = subscription
        deliveries = []
        for topic, message in list(self._retained_messages.items()):
            if not self._matches(topic, topic_filter):
                continue
            # amqtt skips the RECEIVE check here: an ACL-restricted client subscribing to
            # "#" would get every retained topic
            if not await self._topic_filtering(session, topic=topic, action=Action.RECEIVE):
                continue
            # min(subscription, publish) QoS [MQTT-3.8.4-6]; amqtt's "retained.qos or qos"
            # upgrades a QoS 0 retained message to the subscription's QoS
            qos = subscription_qos if message.qos is None else min(subscription_qos, message.qos)
            deliveries.append(deliver(handler, topic, message.data, qos, retain=True))
        results = await asyncio.gather(*deliveries, return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                _LOGGER.warning("retained delivery to %s failed: %r", session.client_id, result)
