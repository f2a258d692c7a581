"""The node's edge: which topics it follows, and what their bytes become.

Every payload is parsed here, once, into a frozen model from ``hub.protocol``; the rest
of the node sees only these typed updates. A payload that does not parse raises
``hub.protocol.DecodeError``, which the node logs and ignores.
"""

from __future__ import annotations

from dataclasses import dataclass

from hub.protocol import (
    Event,
    JoinCode,
    Reply,
    Snapshot,
    Status,
    Topics,
    decode_model,
)

__all__ = [
    "JoinCodeUpdate",
    "Subscriptions",
    "Update",
    "decode_join_code",
    "decode_update",
    "join_topic",
]


def join_topic(topics: Topics, game: str) -> str:
    """``R/games/{game}/join``: the game's join code, retained, readable by displays."""
    return topics.game_join(game)


@dataclass(frozen=True, slots=True)
class JoinCodeUpdate:
    """The code phones need to join; ``None`` when the hub has none (or cleared it)."""

    code: str | None
    url: str | None = None
    """The join link the hub computed (its ``public_url`` with the code), if it sent one."""


def decode_join_code(payload: bytes) -> JoinCodeUpdate:
    """The join topic's payload, ``{"game": "main", "code": "4711"}`` (hub.protocol.JoinCode);
    an empty (cleared) retained payload means there is no code."""
    if not payload.strip():
        return JoinCodeUpdate(None)
    join = decode_model(payload, JoinCode)
    return JoinCodeUpdate(join.code, join.url)


Update = Snapshot | Status | Event | Reply | JoinCodeUpdate


@dataclass(frozen=True, slots=True)
class Subscriptions:
    """The topics one node follows, and how to read each."""

    state: str
    events: str
    status: str
    join: str
    reply: str
    presence: str
    """Its own presence topic (published, not subscribed)."""

    @classmethod
    def of(cls, topics: Topics, game: str, identity: str) -> Subscriptions:
        return cls(
            state=topics.game_state(game),
            events=topics.game_events(game),
            status=topics.status,
            join=join_topic(topics, game),
            reply=topics.client_reply(identity),
            presence=topics.client_presence(identity),
        )

    @property
    def filters(self) -> tuple[str, ...]:
        return (self.status, self.state, self.events, self.join, self.reply)


def decode_update(subs: Subscriptions, topic: str, payload: bytes) -> Update | None:
    """The typed update a message carries; None for a topic the node does not read.

    Raises DecodeError for a payload that is not what the topic carries.
    """
    if topic == subs.state:
        return decode_model(payload, Snapshot)
    if topic == subs.status:
        return decode_model(payload, Status)
    if topic == subs.events:
        return decode_model(payload, Event)
    if topic == subs.reply:
        return decode_model(payload, Reply)
    if topic == subs.join:
        return decode_join_code(payload)
    return None
