"""The broker's session objects: amqtt's ``Session`` without its state machine and queues,
plus the per-client state the hot path needs at hand.

amqtt's ``Session.__init__`` builds a ``transitions.Machine`` for three states: measured here,
about 25 KB of memory and 0.3 ms of CPU per session (half of an idle connection's cost).
``HubSession`` replaces it with ``SessionState``, which offers the calls amqtt makes on
``session.transitions`` (``state``, ``connect()``, ``disconnect()``, ``is_connected()``)
and the same enter hooks (connect/disconnect times, used by session expiry).
"""

from __future__ import annotations

import asyncio
import weakref
from collections import deque
from typing import TYPE_CHECKING, Any

from amqtt.session import ApplicationMessage, Session

if TYPE_CHECKING:
    from hub.broker.encoding import EncodedPublish
    from hub.broker.handler import HubHandler

__all__ = [
    "MAX_CACHED_TOPICS",
    "HubSession",
    "MessageQueue",
    "Outgoing",
    "SessionState",
    "Subscriber",
]

MAX_CACHED_TOPICS = 1024
"""ACL verdicts kept per session (topics); past that the cache starts over."""


class SessionState:
    """The three session states amqtt tracks with a ``transitions.Machine``.

    Holds its session weakly: no reference cycle, so a session is freed as soon as the
    broker lets go of it, not at the next garbage collection.
    """

    __slots__ = ("_session", "state")

    def __init__(self, session: HubSession) -> None:
        self._session = weakref.ref(session)
        self.state = "new"

    def connect(self) -> None:
        if self.state == "connected":
            msg = "the session is already connected"
            raise ValueError(msg)  # what amqtt expects from transitions (MachineError/ValueError)
        self.state = "connected"
        if (session := self._session()) is not None:
            session._on_enter_connected()

    def disconnect(self) -> None:
        self.state = "disconnected"
        if (session := self._session()) is not None:
            session._on_enter_disconnected()

    def is_connected(self) -> bool:
        return self.state == "connected"

    def is_disconnected(self) -> bool:
        return self.state == "disconnected"

    def is_new(self) -> bool:
        return self.state == "new"


class MessageQueue:
    """What amqtt uses of the ``asyncio.Queue`` objects a session holds (``qsize``, ``empty``,
    ``put_nowait``, ``get_nowait``): about 6 KB less per session than two asyncio queues
    with their waiter deques and event, which nothing ever waits on here."""

    __slots__ = ("_items",)

    def __init__(self) -> None:
        self._items: deque[ApplicationMessage] | None = None

    def qsize(self) -> int:
        return len(self._items) if self._items is not None else 0

    def empty(self) -> bool:
        return not self._items

    def put_nowait(self, item: ApplicationMessage) -> None:
        if self._items is None:
            self._items = deque()
        self._items.append(item)

    async def put(self, item: ApplicationMessage) -> None:
        self.put_nowait(item)

    def get_nowait(self) -> ApplicationMessage:
        if not self._items:
            raise asyncio.QueueEmpty
        return self._items.popleft()


class Subscriber:
    """One client's subscription as the router sees it (one per client and filter).

    ``checked``: deliveries on this filter need the per-topic RECEIVE verdict (the filter
    reaches beyond what the client may read); otherwise the SUBSCRIBE check covered them.
    """

    __slots__ = ("checked", "qos", "session")

    def __init__(self, session: HubSession, qos: int, checked: bool) -> None:
        self.session = session
        self.qos = qos
        self.checked = checked


class Outgoing:
    """A QoS 1/2 delivery waiting for its acknowledgement (kept in ``session.inflight_out``,
    so a resumed session gets it again [MQTT-4.4.0-1]).

    ``released``: a QoS 2 delivery whose PUBREC arrived (PUBREL sent, PUBCOMP awaited).
    ``counted``: a live delivery, counted toward the client's bound of pending deliveries.
    """

    __slots__ = ("counted", "message", "qos", "released")

    def __init__(self, message: EncodedPublish, qos: int, *, counted: bool) -> None:
        self.message = message
        self.qos = qos
        self.released = False
        self.counted = counted


class HubSession(Session):  # type: ignore[misc]  # amqtt ships no type information
    """An amqtt ``Session`` with a light state object and the hub's per-client caches."""

    def __init__(self) -> None:
        super().__init__()
        self.retained_messages: Any = MessageQueue()
        """Messages kept while the session is offline (amqtt's name)."""
        self.delivered_message_queue: Any = MessageQueue()  # amqtt's handler used it; unused
        self.handler: HubHandler | None = None
        """The handler of the live connection; None while disconnected."""
        self.filters: dict[str, Subscriber] = {}
        """This session's subscriptions, by filter."""
        self.publish_allowed: set[str] = set()
        """Topics the ACL let this session publish to (denials are not cached: each one is
        checked, and logged, again)."""
        self.receive_verdicts: dict[str, bool] = {}
        """RECEIVE verdicts by topic, for deliveries on ``checked`` subscriptions."""
        self.incoming: dict[int, tuple[str, bytes, bool]] = {}
        """QoS 2 PUBLISHes received, waiting for their PUBREL: id -> (topic, payload, retain)."""

    def _init_states(self) -> None:
        # called by Session.__init__ instead of building the transitions.Machine
        self.transitions: Any = SessionState(self)

    def forget_verdicts(self) -> None:
        """Drop cached ACL verdicts (a new login may carry another identity)."""
        self.publish_allowed.clear()
        self.receive_verdicts.clear()
