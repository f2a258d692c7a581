"""amqtt's Broker with the hub's MQTT 3.1.1 conformance fixes, hot path and message tap.

amqtt is pinned to exactly 0.12.1 in pyproject.toml: the fixes override private methods,
so re-check every one on an upgrade. amqtt still provides the configuration, listeners'
setup, plugins (authentication, topic ACL, events), sessions and their expiry, retained
message storage and shutdown; the per-connection and per-message paths are the hub's:

    connections.py  listeners, CONNECT, login, take-over, resumption, end of a connection
                    (connection.py: bytes in/out, framing.py, keepalive.py, limits.py;
                    session.py: the session objects; adapter_link.py: amqtt's adapters)
    handler.py      one client's packets: publish, subscribe, acknowledgements, in flight
    delivery.py     routing: topic tree, min(publish, subscription) QoS, one copy per
                    client, cached ACL verdicts, offline queue bounds, the message tap
                    (encoding.py: each message encoded once; topictree.py)
    retained.py     retained messages only for a client's new subscriptions, within its ACL
    acl.py          wills obey the publish ACL
"""

from __future__ import annotations

from typing import Any

from hub.broker.acl import WillAclBroker
from hub.broker.connections import GuardedConnectionsBroker
from hub.broker.delivery import MessageTap
from hub.broker.limits import Limits
from hub.broker.retained import RetainedBroker

__all__ = ["HubBroker", "MessageTap"]


class HubBroker(RetainedBroker, WillAclBroker, GuardedConnectionsBroker):
    """amqtt's Broker with the hub's conformance fixes and an in-process message tap
    (``message_tap``: every message routed after the ACL check, wills and the broker's own
    included; the state service listens there)."""

    def __init__(self, *args: Any, limits: Limits | None = None, **kwargs: Any) -> None:
        self.limits = limits or Limits()
        super().__init__(*args, **kwargs)
