"""Authentication plugins for the embedded broker."""

from __future__ import annotations

from dataclasses import dataclass

from amqtt.plugins.base import BaseAuthPlugin
from amqtt.session import Session

__all__ = ["OpenAuthPlugin"]


class OpenAuthPlugin(BaseAuthPlugin):  # type: ignore[misc]
    """Admit every client as itself.

    Unlike amqtt's AnonymousAuthPlugin it does not mark sessions anonymous, so persistent
    sessions (clean session 0) keep their subscriptions and queued QoS 1/2 messages.
    """

    @dataclass
    class Config:
        pass

    async def authenticate(self, *, session: Session) -> bool | None:
        return True
