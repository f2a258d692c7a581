"""amqtt plugins used only by the broker tests."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from amqtt.contexts import Action
from amqtt.plugins.base import BasePlugin, BaseTopicPlugin
from amqtt.session import Session

__all__ = ["DenyTopics", "ReadersByPrefix", "ReceivedRecorder"]


class DenyTopics(BaseTopicPlugin):  # type: ignore[misc]  # amqtt ships no type information
    """A topic ACL refusing PUBLISH / RECEIVE on the listed topics, allowing everything else."""

    @dataclass
    class Config:
        publish: list[str] = field(default_factory=list)
        receive: list[str] = field(default_factory=list)

    async def topic_filtering(
        self,
        *,
        session: Session | None = None,
        topic: str | None = None,
        action: Action | None = None,
    ) -> bool:
        if action == Action.PUBLISH:
            return topic not in self.config.publish
        if action == Action.RECEIVE:
            return topic not in self.config.receive
        return True


class ReadersByPrefix(BaseTopicPlugin):  # type: ignore[misc]
    """Users listed in ``readers`` receive only topics under their prefixes (subscribing to
    anything is allowed); everyone else receives everything. Says which filters need a
    per-message check (``receive_needs_check``), as the hub's ACL plugin does."""

    @dataclass
    class Config:
        readers: dict[str, list[str]] = field(default_factory=dict)

    def _prefixes(self, session: Session | None) -> list[str] | None:
        if session is None or session.username is None:
            return None
        prefixes: list[str] | None = self.config.readers.get(session.username)
        return prefixes

    async def topic_filtering(
        self,
        *,
        session: Session | None = None,
        topic: str | None = None,
        action: Action | None = None,
    ) -> bool:
        prefixes = self._prefixes(session)
        if action == Action.RECEIVE and prefixes is not None:
            return topic is not None and topic.startswith(tuple(prefixes))
        return True

    def receive_needs_check(self, session: Session, topic_filter: str) -> bool:
        prefixes = self._prefixes(session)
        if prefixes is None:
            return False
        covered = topic_filter.startswith(tuple(prefixes)) and "+" not in topic_filter
        return not covered


class ReceivedRecorder(BasePlugin):  # type: ignore[misc]
    """Records amqtt's ``broker_message_received`` events: the naive tap on stock amqtt."""

    @dataclass
    class Config:
        pass

    def __init__(self, context: Any) -> None:
        super().__init__(context)
        self.topics: list[str] = []

    async def on_broker_message_received(self, *, client_id: str, message: Any) -> None:
        if message is not None:
            self.topics.append(message.topic)
