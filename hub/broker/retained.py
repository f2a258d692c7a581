"""Retained messages go to a client's new subscriptions only, within its ACL."""

from __future__ import annotations

from amqtt.session import Session

from hub.broker.delivery import DeliveryBroker
from hub.broker.encoding import EncodedPublish
from hub.broker.session import HubSession

__all__ = ["RetainedBroker"]


class RetainedBroker(DeliveryBroker):
    """Sends retained messages for a SUBSCRIBE only, never on CONNECT."""

    async def _publish_retained_messages_for_subscription(
        self, subscription: tuple[str, int], session: Session
    ) -> None:
        # amqtt 0.12.1 also calls this on every CONNECT, for the filters of *all* sessions
        # (broker.py, _handle_client_session): a client that subscribed to nothing received
        # other clients' retained topics past the ACL, and a resumed session got its retained
        # messages again (cf. Yakifo/amqtt#14, "replay and retained message logic need
        # work"). The hub's connection handling calls it for a new subscription only
        # (DeliveryBroker.subscribe_client) [MQTT-3.3.1-6].
        if not isinstance(session, HubSession) or session.handler is None:
            return
        topic_filter, subscription_qos = subscription
        entry = session.filters.get(topic_filter)
        checked = entry is not None and entry.checked
        for topic, message in list(self._retained_messages.items()):
            if not self._matches(topic, topic_filter):
                continue
            # amqtt skips the RECEIVE check here: an ACL-restricted client subscribing to
            # "#" would get every retained topic
            if checked and not await self._may_receive(session, topic):
                continue
            handler = session.handler
            if handler is None:  # gone while the ACL was asked
                return
            # min(subscription, publish) QoS [MQTT-3.8.4-6]; amqtt's "retained.qos or qos"
            # upgrades a QoS 0 retained message to the subscription's QoS
            qos = subscription_qos if message.qos is None else min(subscription_qos, message.qos)
            handler.deliver_retained(EncodedPublish(topic, bytes(message.data)), qos)
