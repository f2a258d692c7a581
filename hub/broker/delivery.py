"""Routing: subscriptions in a topic tree, each message encoded once, delivered in place.

Replaces amqtt's ``_broadcast_message`` -> ``_broadcast_queue`` -> ``_broadcast_loop`` ->
``_run_broadcast`` pipeline, which for every message scans every filter (``_matches``),
runs the topic plugins' RECEIVE check once per subscriber (a task and a ``gather`` per
check), and starts a task per delivery that encodes its own PUBLISH and drains the socket.
It also delivers at the subscription's QoS (not min(publish, subscription) [MQTT-3.8.4-6]),
once per matching filter (a client holding ``a/#`` and ``a/+`` gets two copies
[MQTT-3.3.5-1]), and queues without bound for offline sessions (Yakifo/amqtt#14).

Here a message is matched against a ``TopicTree``, encoded once (``EncodedPublish``) and
appended to each subscriber's outgoing batch, synchronously. ACL verdicts are cached: a
subscription whose filter the ACL granted whole needs no per-message check at all; one
wider than what its client may read (a display's ``R/#``) is checked once per topic and
session, then served from ``HubSession.receive_verdicts``; a client's allowed PUBLISH topics
are remembered in ``HubSession.publish_allowed``. Only a verdict not yet cached makes routing
wait (for the plugins' async ``topic_filtering``).

Topic plugins may tell which subscriptions need per-message checks with a synchronous
``receive_needs_check(session, topic_filter) -> bool`` (``ReceiveScope``); a plugin without
it gets every delivery checked (once per topic and session). They may also refuse the
retain flag on topics a client may otherwise publish with a synchronous
``retain_allowed(session, topic) -> bool`` (``RetainPolicy``): such a PUBLISH is dropped
and logged like any denied one (acknowledged at its QoS, the connection kept), neither
routed nor stored.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Collection
from typing import Any, Protocol

from amqtt.broker import Broker, RetainedApplicationMessage
from amqtt.contexts import Action
from amqtt.events import BrokerEvents
from amqtt.session import IncomingApplicationMessage, Session

from hub.broker.encoding import EncodedPublish
from hub.broker.handler import HubHandler
from hub.broker.limits import Limits
from hub.broker.packets import suback
from hub.broker.session import MAX_CACHED_TOPICS, HubSession, Subscriber
from hub.broker.topictree import TopicTree

__all__ = ["DeliveryBroker", "MessageTap", "ReceiveScope", "RetainPolicy"]

_LOGGER = logging.getLogger(__name__)
_REFUSED = 0x80

MessageTap = Callable[[str, bytes, Session | None], None]
"""Called synchronously with (topic, payload, source session) for every message the broker
routes after its ACL check: client publishes, wills, and the broker's own."""


class ReceiveScope(Protocol):
    """Optional hook of a topic plugin: does a delivery on this (granted) filter need the
    per-topic RECEIVE check? False when everything the filter can match is readable."""

    def receive_needs_check(self, session: Session, topic_filter: str) -> bool: ...


class RetainPolicy(Protocol):
    """Optional hook of a topic plugin: may this client retain on this topic, which it may
    publish to? (The hub refuses retained commands: they would be replayed.)"""

    def retain_allowed(self, session: Session, topic: str) -> bool: ...


def valid_filter(topic_filter: str) -> bool:
    """A topic filter MQTT allows [MQTT-4.7.1-1, -2, -3, MQTT-4.7.3-1]."""
    if not topic_filter:
        return False
    levels = topic_filter.split("/")
    for index, level in enumerate(levels):
        if "#" in level and (level != "#" or index != len(levels) - 1):
            return False
        if "+" in level and level != "+":
            return False
    return True


class DeliveryBroker(Broker):  # type: ignore[misc]  # amqtt ships no type information
    """Routes messages at min(publish, subscription) QoS, once per client, within bounds."""

    limits: Limits

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._tree: TopicTree[Subscriber] = TopicTree()
        self._firing: set[asyncio.Task[None]] = set()
        self.message_tap: MessageTap | None = None

    # --- plugin events -----------------------------------------------------------------------
    def _fire(self, event: BrokerEvents, **kwargs: Any) -> None:
        """Fire a broker event without waiting, and only if a plugin listens: amqtt's
        ``fire_event`` is a coroutine, awaited for every message even when nobody listens."""
        manager = self.plugins_manager
        if event in manager._event_plugin_callbacks:
            task = asyncio.ensure_future(manager.fire_event(event, **kwargs))
            self._firing.add(task)
            task.add_done_callback(self._firing.discard)

    # --- subscriptions -----------------------------------------------------------------------
    @property
    def subscriptions(self) -> dict[str, list[tuple[Session, int]]]:
        """amqtt's view (filter -> [(session, qos)]), built from the tree on demand."""
        view: dict[str, list[tuple[Session, int]]] = {}
        for topic_filter, _key, entry in self._tree:
            view.setdefault(topic_filter, []).append((entry.session, entry.qos))
        return view

    async def add_subscription(self, subscription: tuple[str, int], session: Session) -> int:
        """The granted QoS, or 0x80. A repeated filter replaces the client's subscription
        and its QoS [MQTT-3.8.4-3] (amqtt kept the first)."""
        topic_filter, qos = subscription
        if not valid_filter(topic_filter):
            return _REFUSED
        if not await self._topic_filtering(session, topic_filter, Action.SUBSCRIBE):
            return _REFUSED
        max_qos = self.config.get("max-qos", qos)
        if isinstance(max_qos, int):
            qos = min(qos, max_qos)
        entry = Subscriber(session, qos, self._receive_checked(session, topic_filter))
        self._tree.add(topic_filter, session.client_id, entry)
        if isinstance(session, HubSession):
            session.filters[topic_filter] = entry
        return qos

    def _receive_checked(self, session: Session, topic_filter: str) -> bool:
        manager = self.plugins_manager
        plugins = manager._topic_plugins
        if not plugins or not manager.is_topic_filtering_enabled():
            return False
        for plugin in plugins:
            needs_check = getattr(plugin, "receive_needs_check", None)
            if needs_check is None or needs_check(session, topic_filter):
                return True
        return False

    def _recheck_subscriptions(self, session: HubSession) -> None:
        """A resumed session may carry another login than the one that subscribed (an
        operator may use any client id): decide again which filters need per-message
        checks."""
        for topic_filter, entry in session.filters.items():
            entry.checked = self._receive_checked(session, topic_filter)

    def _del_subscription(self, a_filter: str, session: Session) -> int:
        entry = self._tree.get(a_filter, session.client_id)
        if entry is None or entry.session is not session:
            return 0
        self._tree.remove(a_filter, session.client_id)
        if isinstance(session, HubSession):
            session.filters.pop(a_filter, None)
        return 1

    async def _del_all_subscriptions(self, session: Session) -> None:
        # amqtt scans every filter of every client
        if isinstance(session, HubSession):
            for topic_filter in list(session.filters):
                self._del_subscription(topic_filter, session)

    async def subscribe_client(
        self, handler: HubHandler, pid: int, topics: list[tuple[str, int]]
    ) -> None:
        """SUBSCRIBE: add the subscriptions, SUBACK, then retained messages for the new
        subscriptions only (``_publish_retained_messages_for_subscription``)."""
        session = handler.session
        codes = [await self.add_subscription(topic, session) for topic in topics]
        handler.send(suback(pid, codes))
        for (topic_filter, _requested), code in zip(topics, codes, strict=True):
            if code == _REFUSED:
                continue
            self._fire(
                BrokerEvents.CLIENT_SUBSCRIBED,
                client_id=session.client_id,
                topic=topic_filter,
                qos=code,
            )
            await self._publish_retained_messages_for_subscription((topic_filter, code), session)

    def unsubscribe_client(self, session: HubSession, filters: list[str]) -> None:
        for topic_filter in filters:
            self._del_subscription(topic_filter, session)
            self._fire(
                BrokerEvents.CLIENT_UNSUBSCRIBED, client_id=session.client_id, topic=topic_filter
            )

    # --- routing -----------------------------------------------------------------------------
    def _targets(self, topic: str) -> Collection[Subscriber]:
        """Each subscribed client once, at the highest QoS of its matching filters
        (MQTT-3.3.5-1), checked only if none of them was granted whole."""
        found = self._tree.match(topic)
        if not found:
            return ()
        if len(found) == 1:
            return found[0].values()
        merged: dict[str, Subscriber] = {}
        for entries in found:
            for key, entry in entries.items():
                have = merged.get(key)
                if have is None:
                    merged[key] = entry
                elif entry.qos > have.qos or (have.checked and not entry.checked):
                    merged[key] = Subscriber(
                        entry.session, max(have.qos, entry.qos), have.checked and entry.checked
                    )
        return merged.values()

    @staticmethod
    def _unresolved(targets: Collection[Subscriber], topic: str) -> list[HubSession]:
        """Sessions among the targets whose RECEIVE verdict for ``topic`` is not cached."""
        return [
            target.session
            for target in targets
            if target.checked and topic not in target.session.receive_verdicts
        ]

    async def _resolve(self, sessions: list[HubSession], topic: str) -> None:
        """Ask the topic plugins for the RECEIVE verdicts of these sessions, and cache them."""
        for session in sessions:
            verdict = bool(await self._topic_filtering(session, topic=topic, action=Action.RECEIVE))
            verdicts = session.receive_verdicts
            if len(verdicts) >= MAX_CACHED_TOPICS:
                verdicts.clear()
            verdicts[topic] = verdict

    async def _may_receive(self, session: HubSession, topic: str) -> bool:
        if topic not in session.receive_verdicts:
            await self._resolve([session], topic)
        return session.receive_verdicts.get(topic, False)

    def route_now(
        self, source: HubSession, topic: str, payload: bytes, qos: int, retain: bool
    ) -> bool:
        """Route a client's PUBLISH if every ACL verdict it needs is cached."""
        if topic not in source.publish_allowed:
            return False
        if retain and not self.retain_allowed(source, topic):
            return True  # dropped; the caller acknowledges it
        targets = self._targets(topic)
        if self._unresolved(targets, topic):
            return False
        self._message_event(BrokerEvents.MESSAGE_RECEIVED, source, topic, payload, qos, retain)
        self._message_event(BrokerEvents.MESSAGE_BROADCAST, source, topic, payload, qos, retain)
        self._deliver(source, topic, payload, qos, targets)
        if retain:
            self._store_retained(topic, payload, qos)
        return True

    async def route_client_publish(
        self, source: HubSession, topic: str, payload: bytes, qos: int, retain: bool
    ) -> None:
        """Route a client's PUBLISH once the ACL allowed it (a denial is dropped; the ACL
        plugin logs it)."""
        # amqtt fires MESSAGE_RECEIVED before its ACL check, for denied messages too
        self._message_event(BrokerEvents.MESSAGE_RECEIVED, source, topic, payload, qos, retain)
        if topic not in source.publish_allowed:
            if not await self._topic_filtering(source, topic=topic, action=Action.PUBLISH):
                return
            if len(source.publish_allowed) >= MAX_CACHED_TOPICS:
                source.publish_allowed.clear()
            source.publish_allowed.add(topic)
        if retain and not self.retain_allowed(source, topic):
            return
        while unresolved := self._unresolved(self._targets(topic), topic):
            await self._resolve(unresolved, topic)
        self._message_event(BrokerEvents.MESSAGE_BROADCAST, source, topic, payload, qos, retain)
        self._deliver(source, topic, payload, qos, self._targets(topic))
        if retain:
            self._store_retained(topic, payload, qos)

    def retain_allowed(self, source: Session, topic: str) -> bool:
        """Ask the topic plugins' ``RetainPolicy``; a refusal is logged here."""
        for plugin in self.plugins_manager._topic_plugins:
            allowed = getattr(plugin, "retain_allowed", None)
            if allowed is not None and not allowed(source, topic):
                _LOGGER.warning(
                    "dropped retained publish by %s to %s: may not retain there",
                    source.username or source.client_id,
                    topic,
                )
                return False
        return True

    def _message_event(  # noqa: PLR0917 - the fields of the message, as everywhere here
        self,
        event: BrokerEvents,
        source: HubSession,
        topic: str,
        payload: bytes,
        qos: int,
        retain: bool,
    ) -> None:
        """amqtt's per-message plugin events, built only when a plugin listens."""
        if event in self.plugins_manager._event_plugin_callbacks:
            message = IncomingApplicationMessage(None, topic, qos, payload, retain)
            self._fire(event, client_id=source.client_id, message=message)

    async def _broadcast_message(
        self,
        session: Session | None,
        topic: str | None,
        data: bytes | bytearray | None,
        force_qos: int | None = None,
    ) -> None:
        """Wills and the broker's own messages (``internal_message_broadcast``). The QoS
        given is the publish QoS; None delivers at each subscription's QoS."""
        if topic is None:
            return
        payload = bytes(data or b"")
        while unresolved := self._unresolved(self._targets(topic), topic):
            await self._resolve(unresolved, topic)
        self._deliver(session, topic, payload, force_qos, self._targets(topic))

    def _deliver(
        self,
        source: Session | None,
        topic: str,
        payload: bytes,
        publish_qos: int | None,
        targets: Collection[Subscriber],
    ) -> None:
        """Hand one message to every target, all verdicts known (synchronous)."""
        if self.message_tap is not None:
            self.message_tap(topic, payload, source)
        if not targets:
            return
        message = EncodedPublish(topic, payload)
        direct = len(targets) == 1  # a reply: its client is written first (``Flusher``)
        for target in targets:
            session = target.session
            if target.checked and not session.receive_verdicts[topic]:
                continue
            qos = target.qos if publish_qos is None or publish_qos > target.qos else publish_qos
            handler = session.handler
            if handler is not None:
                handler.deliver(message, qos)
                if direct:
                    handler.hurry()
            elif qos and not session.clean_session and not session.is_anonymous:
                self._queue_offline(session, topic, payload, qos)

    def _queue_offline(self, session: HubSession, topic: str, payload: bytes, qos: int) -> None:
        # amqtt's offline queue has no bound: an inactive session grows without limit until
        # it expires (Yakifo/amqtt#14); keep the oldest messages, drop newer ones
        queue = session.retained_messages
        if queue.qsize() >= self.limits.max_queued_messages:
            _LOGGER.info(
                "offline queue of %s is full (%d): dropping a message on %s",
                session.client_id,
                self.limits.max_queued_messages,
                topic,
            )
            return
        # no source session: it would keep a disconnected publisher's session alive
        message = RetainedApplicationMessage(None, topic, payload, qos)
        queue.put_nowait(message)
        self._fire(
            BrokerEvents.RETAINED_MESSAGE, client_id=session.client_id, retained_message=message
        )

    # --- retained messages -------------------------------------------------------------------
    async def retain_message(
        self,
        source_session: Session | None,
        topic_name: str | None,
        data: bytes | bytearray | None,
        qos: int | None = None,
    ) -> None:
        if topic_name is not None:
            self._store_retained(topic_name, bytes(data or b""), qos)

    def _store_retained(self, topic: str, payload: bytes, qos: int | None) -> None:
        """Keep (or, for an empty payload, clear [MQTT-3.3.1-10]) the retained message."""
        if payload:
            # no source session: it would keep a disconnected publisher's session alive
            message = RetainedApplicationMessage(None, topic, payload, qos)
            self._retained_messages[topic] = message
            self._fire(BrokerEvents.RETAINED_MESSAGE, client_id=None, retained_message=message)
        else:
            cleared = self._retained_messages.pop(topic, None)
            if cleared is not None:
                cleared.data = b""
                self._fire(BrokerEvents.RETAINED_MESSAGE, client_id=None, retained_message=cleared)

    # --- output ------------------------------------------------------------------------------
    def create_offline_session(self, client_id: str) -> tuple[HubHandler, HubSession]:
        """``BrokerContext.add_subscription`` for an unknown client: a disconnected session."""
        session = HubSession()
        session.client_id = client_id
        session.transitions.disconnect()
        return HubHandler(self, session, None, self.limits), session
