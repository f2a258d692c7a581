"""Who may publish and subscribe where (pure; enforced by whichever broker runs).

Inside the root R: only the service publishes status, stats, state, events and replies;
a client publishes only its own command topics and its own presence. Players read status,
stats, state, events and presence, and their own replies; displays also the join codes;
operators read everything. Outside R only operators publish or subscribe.
"""

from __future__ import annotations

from dataclasses import dataclass

from hub.auth.roles import Role
from hub.protocol import Topics, topic_matches

__all__ = ["Acl", "Identity", "filter_covers"]


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
        self._display_reads = (*self._player_reads, f"{root}/games/+/join")

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
        if topic.startswith("$"):
            return False
        if not self._inside_root(topic):
            return who.role is Role.OPERATOR
        own = (
            self._topics.game_command("+", who.username),
            self._topics.client_presence(who.username),
        )
        return any(topic_matches(topic, pattern) for pattern in own)

    def may_subscribe(self, who: Identity, topic_filter: str) -> bool:
        if who.role in (Role.SERVICE, Role.OPERATOR):
            return True
        if topic_filter.startswith("$"):
            return False
        readable = self._display_reads if who.role is Role.DISPLAY else self._player_reads
        own_reply = self._topics.client_reply(who.username)
        return any(filter_covers(p, topic_filter) for p in (*readable, own_reply))
