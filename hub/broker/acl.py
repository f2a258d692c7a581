"""Will messages obey the publish ACL like any other message from their client."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from amqtt.broker import Broker
from amqtt.contexts import Action
from amqtt.mqtt.protocol.broker_handler import BrokerProtocolHandler
from amqtt.session import Session

__all__ = ["WillAclBroker"]

_LOGGER = logging.getLogger(__name__)


class WillAclBroker(Broker):  # type: ignore[misc]  # amqtt ships no type information
    """Drops a will its client may not publish (or not retain, if it asks to), instead of
    publishing it on its behalf."""

    retain_allowed: Callable[[Session, str], bool]
    """``DeliveryBroker.retain_allowed``, later in the MRO."""

    async def _handle_disconnect(
        self,
        client_session: Session,
        handler: BrokerProtocolHandler,
        disconnect_waiter: asyncio.Future[Any],
    ) -> None:
        # amqtt 0.12.1 broadcasts (and retains) the will without any topic check: a client
        # could set its will on a topic it may not publish to, drop the connection, and
        # have the broker publish it for it (past the ACL, into the in-process tap too).
        if client_session.will_flag and not await self._will_allowed(client_session):
            _LOGGER.warning(
                "dropping the will of %s: may not publish to %r",
                client_session.client_id,
                client_session.will_topic,
            )
            client_session.will_flag = False
        await super()._handle_disconnect(client_session, handler, disconnect_waiter)

    async def _will_allowed(self, session: Session) -> bool:
        topic = session.will_topic
        if not topic or "+" in topic or "#" in topic:  # not a topic name [MQTT-3.3.2-2]
            return False
        allowed: bool = await self._topic_filtering(session, topic=topic, action=Action.PUBLISH)
        return allowed and (not session.will_retain or self.retain_allowed(session, topic))
