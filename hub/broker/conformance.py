"""Fixes for what stock amqtt 0.12.1 gets wrong, as a Broker subclass.

amqtt is pinned to exactly 0.12.1 in pyproject.toml: these overrides patch private
methods, so re-check every one on an upgrade.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from amqtt.broker import Broker
from amqtt.session import Session

__all__ = ["HubBroker", "MessageTap"]

MessageTap = Callable[[str, bytes, Session | None], None]
"""Called synchronously with (topic, payload, source session) for every message the broker
routes after its ACL check: client publishes, wills, and the broker's own."""


class HubBroker(Broker):  # type: ignore[misc]  # amqtt ships no type information
    """amqtt's Broker with the hub's conformance fixes and an in-process message tap."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.message_tap: MessageTap | None = None

    async def _broadcast_message(
        self,
        session: Session | None,
        topic: str | None,
        data: bytes | bytearray | None,
        force_qos: int | None = None,
    ) -> None:
        # The single choke point every routed message passes (publishes after the ACL,
        # wills, internal messages): the in-process state service listens here.
        if self.message_tap is not None and topic is not None:
            self.message_tap(topic, bytes(data or b""), session)
        await super()._broadcast_message(session, topic, data, force_qos)

    async def _publish_retained_messages_for_subscription(
        self, subscription: tuple[str, int], session: Session
    ) -> None:
        # amqtt 0.12.1 calls this on every CONNECT for the filters of *all* sessions
        # (broker.py, _handle_client_session), leaking other clients' retained topics past
        # the ACL. Only honour filters this session itself holds.
        holders = self._subscriptions.get(subscription[0], [])
        if not any(s.client_id == session.client_id for s, _ in holders):
            return
        await super()._publish_retained_messages_for_subscription(subscription, session)
