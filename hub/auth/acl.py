"""Who may publish and subscribe where (pure; enforced by whichever broker runs).

Inside the root R: only the service publishes status, stats, state, events and replies;
a client publishes only its own command topics and its own presence. Players read status,
stats, state, events and presence, and their own replies; displays also the join codes;
operators read everything. Outside R only operators publish or subscribe, ``$`` topics
included (as Mosquitto allows), except ``$SYS``, which only the broker publishes. A filter
that reaches beyond what a client may read (a display on ``R/#``) is granted, and then every
delivery on it is checked; a filter that can match nothing readable is refused.
Nobody but the service may *retain* a message on a command topic: a command is applied
when it is sent, never replayed to the service when it (re)subscribes.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from hub.auth.roles import Role
from hub.protocol import Topics, topic_matches

__all__ = [
    "BROKER_TOPICS",
    "Acl",
    "Grants",
    "Identity",
    "SubscribeDecision",
    "filter_covers",
    "filters_overlap",
]

BROKER_TOPICS = "$SYS"
"""The first level of the topics only the broker itself publishes."""


@dataclass(frozen=True, slots=True)
class Identity:
    username: str
    role: Role


def filter_covers(pattern: str, topic_filter: str) -> bool:
    """True if every topic ``topic_filter`` can match is also matched by ``pattern``."""
    pattern_levels, filter_levels = pattern.split("/"), topic_filter.split("/")
    for index, part in enumerate(pattern_levels):
        if part == "#":
            return True
        if index >= len(filter_levels) or filter_levels[index] == "#":
            return False
        if part != "+" and filter_levels[index] != part:
            return False
    return len(filter_levels) == len(pattern_levels)


def filters_overlap(first: str, second: str) -> bool:
    """True if some topic matches both filters."""
    a, b = first.split("/"), second.split("/")
    for index in range(max(len(a), len(b))):
        x = a[index] if index < len(a) else None
        y = b[index] if index < len(b) else None
        if x == "#" or y == "#":
            return True
        if x is None or y is None:
            return False
        if "+" not in (x, y) and x != y:
            return False
    return True


@dataclass(frozen=True, slots=True)
class Grants:
    """A player's or display's whole permission, as topic filters: what it may publish
    and read. External brokers' permission lists are generated from these."""

    publish: tuple[str, ...]
    read: tuple[str, ...]


class SubscribeDecision(Enum):
    DENY = "deny"
    """The filter can match nothing the client may read: SUBACK 0x80."""
    GRANT = "grant"
    """Everything the filter can match is readable."""
    FILTERED = "filtered"
    """Granted, but each delivery must pass ``may_read`` (e.g. a display on ``R/#``)."""


class Acl:
    def __init__(self, topics: Topics) -> None:
        self._topics = topics
        root = topics.root
        self._player_reads = (
            topics.status,
            topics.stats,
            f"{root}/games/+/state",
            f"{root}/games/+/events",
            topics.presence_filter,
        )
        self._display_reads = (*self._player_reads, topics.game_join("+"))

    def _inside_root(self, topic: str) -> bool:
        first = topic.split("/", 1)[0]
        return (
            topic == self._topics.root
            or topic.startswith(self._topics.root + "/")
            or (first in ("+", "#"))
        )

    def may_publish(self, who: Identity, topic: str) -> bool:
        if who.role is Role.SERVICE:
            return True
        if topic.split("/", 1)[0] == BROKER_TOPICS:
            return False
        if not self._inside_root(topic):
            return who.role is Role.OPERATOR
        return any(topic_matches(topic, pattern) for pattern in self.own_topics(who.username))

    def own_topics(self, username: str) -> tuple[str, ...]:
        """The topics a client publishes on as itself: its commands and its presence."""
        return (
            self._topics.game_command("+", username),
            self._topics.client_presence(username),
        )

    def may_retain(self, who: Identity, topic: str) -> bool:
        """May ``who`` publish ``topic`` with the retain flag (given it may publish it)?
        Not on command topics (except the service, which clears stored ones)."""
        if who.role is Role.SERVICE:
            return True
        return not topic_matches(topic, self._topics.command_filter)

    def _readable(self, who: Identity) -> tuple[str, ...]:
        reads = self._display_reads if who.role is Role.DISPLAY else self._player_reads
        return (*reads, self._topics.client_reply(who.username))

    def grants(self, who: Identity) -> Grants:
        """Everything a player or display may publish and read. Operators and the service
        have no such list (they may use anything): ValueError."""
        if who.role in (Role.SERVICE, Role.OPERATOR):
            msg = f"the {who.role} role is not limited to a list of topics"
            raise ValueError(msg)
        return Grants(publish=self.own_topics(who.username), read=self._readable(who))

    def may_subscribe(self, who: Identity, topic_filter: str) -> bool:
        """True if every topic the filter can match is readable."""
        return self.subscribe(who, topic_filter) is SubscribeDecision.GRANT

    def subscribe(self, who: Identity, topic_filter: str) -> SubscribeDecision:
        if who.role in (Role.SERVICE, Role.OPERATOR):
            return SubscribeDecision.GRANT
        if topic_filter.startswith("$"):
            return SubscribeDecision.DENY
        readable = self._readable(who)
        if any(filter_covers(pattern, topic_filter) for pattern in readable):
            return SubscribeDecision.GRANT
        if any(filters_overlap(pattern, topic_filter) for pattern in readable):
            return SubscribeDecision.FILTERED
        return SubscribeDecision.DENY

    def may_read(self, who: Identity, topic: str) -> bool:
        """May this message be delivered to ``who``?"""
        if who.role in (Role.SERVICE, Role.OPERATOR):
            return True
        return not topic.startswith("$") and any(
            topic_matches(topic, pattern) for pattern in self._readable(who)
        )
