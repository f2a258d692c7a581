"""amqtt's Broker with the hub's MQTT 3.1.1 conformance fixes and an in-process message tap.

amqtt is pinned to exactly 0.12.1 in pyproject.toml: the fixes override private methods,
so re-check every one on an upgrade. Each concern lives in its own module:

    connections.py  limits, CONNECT timeout, keep-alive, zombie connections (guard.py,
                    framing.py, keepalive.py, limits.py do the per-connection work)
    delivery.py     delivered QoS, one copy per subscriber, offline queue, backlog bounds
    retained.py     retained messages only for a client's new subscriptions, within its ACL
    acl.py          wills obey the publish ACL
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from amqtt.session import Session

from hub.broker.acl import WillAclBroker
from hub.broker.connections import GuardedConnectionsBroker
from hub.broker.delivery import DeliveryBroker
from hub.broker.limits import Limits
from hub.broker.retained import RetainedBroker

__all__ = ["HubBroker", "MessageTap"]

MessageTap = Callable[[str, bytes, Session | None], None]
"""Called synchronously with (topic, payload, source session) for every message the broker
routes after its ACL check: client publishes, wills, and the broker's own."""


class HubBroker(RetainedBroker, DeliveryBroker, WillAclBroker, GuardedConnectionsBroker):
    """amqtt's Broker with the hub's conformance fixes and an in-process message tap."""

    def __init__(self, *args: Any, limits: Limits | None = None, **kwargs: Any) -> None:
        self.limits = limits or Limits()
        super().__init__(*args, **kwargs)
        self.message_tap: MessageTap | None = None

    async def _broadcast_message(
        self,
        session: Session | None,
        topic: str | None,
        data: bytes | bytearray | None,
        force_qos: int | None = None,
    ) -> None:
        # The single choke point every routed message passes: client publishes after the
        # ACL check (amqtt's broker_message_received event fires before it, for denied
        # publishes too), wills (WillAclBroker drops denied ones first), internal messages.
        # The in-process state service listens here.
        if self.message_tap is not None and topic is not None:
            self.message_tap(topic, bytes(data or b""), session)
        await super()._broadcast_message(session, topic, data, force_qos)
