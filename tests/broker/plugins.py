"""amqtt plugins used only by the broker tests."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from amqtt.contexts import Action
from amqtt.plugins.base import BasePlugin, BaseTopicPlugin
from amqtt.session import Session

__all__ = ["DenyTopics", "ReceivedRecorder"]


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
