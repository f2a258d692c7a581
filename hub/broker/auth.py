"""Authentication and topic ACL plugins for the embedded broker.

The rules themselves live in ``hub.auth`` (broker-agnostic); these plugins apply them to
amqtt sessions. An authenticated session carries its ``Identity`` in
``session.attributes[IDENTITY]``; the ACL reads it from there.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from amqtt.contexts import Action
from amqtt.plugins.base import BaseAuthPlugin, BaseTopicPlugin
from amqtt.session import Session

from hub.auth import (
    Acl,
    Identity,
    LoginGate,
    PasswordVerifier,
    Role,
    Sessions,
    TooManyAttemptsError,
    Users,
    VerifierBusyError,
)
from hub.auth.acl import SubscribeDecision
from hub.auth.login import LoginCheck
from hub.broker.connections import ASSIGNED_CLIENT_ID

__all__ = ["IDENTITY", "HubAuthPlugin", "OpenAuthPlugin"]

_LOGGER = logging.getLogger(__name__)
IDENTITY = "hub.identity"
FILTERED = "hub.filtered"
"""Set on a session holding a filter wider than what it may read."""


class OpenAuthPlugin(BaseAuthPlugin):  # type: ignore[misc]
    """Admit every client as itself (tests of broker conformance only).

    Unlike amqtt's AnonymousAuthPlugin it does not mark sessions anonymous, so persistent
    sessions (clean session 0) keep their subscriptions and queued QoS 1/2 messages.
    """

    @dataclass
    class Config:
        pass

    async def authenticate(self, *, session: Session) -> bool | None:
        return True


class HubAuthPlugin(BaseAuthPlugin, BaseTopicPlugin):  # type: ignore[misc]
    """Users from the hub's user store, else player sessions (``hub.auth.SessionStore``);
    publish/subscribe rules from ``hub.auth.Acl``."""

    @dataclass
    class Config:
        users: Any = None
        """The UserStore."""
        acl: Any = None
        """The Acl."""
        gate: Any = None
        """The LoginGate admitting every check (throttled per address)."""
        verifier: Any = None
        """The PasswordVerifier (argon2 on its own bounded pool)."""
        sessions: Any = None
        """The SessionStore of player sessions (phones), or None."""

    def __init__(self, context: Any) -> None:
        super().__init__(context)
        self._users: Users = self.config.users
        self._acl: Acl = self.config.acl
        self._gate: LoginGate = self.config.gate
        self._verifier: PasswordVerifier = self.config.verifier
        self._sessions: Sessions | None = self.config.sessions

    async def authenticate(self, *, session: Session) -> bool | None:
        name, password = session.username, session.password
        address = session.remote_address or "?"
        try:
            async with self._gate.attempt(address) as attempt:
                identity = await self._identity(name, password, address)
                if identity is None:
                    delay = await attempt.refuse()
                    _LOGGER.warning(
                        "refused login as %r from %s (bad credentials; answer delayed %.2f s)",
                        name,
                        address,
                        delay,
                    )
                    return False
        except (TooManyAttemptsError, VerifierBusyError) as exc:
            _LOGGER.warning("refused login as %r from %s unchecked: %s", name, address, exc)
            return False
        if identity.role in (Role.PLAYER, Role.DISPLAY) and session.client_id != identity.username:
            if session.attributes.get(ASSIGNED_CLIENT_ID):
                await self._assign_client_id(session, identity.username)
                session.attributes[IDENTITY] = identity
                return True
            _LOGGER.warning(
                "refused %s %r from %s: its MQTT client id must be its username, not %r",
                identity.role,
                identity.username,
                address,
                session.client_id,
            )
            return False
        session.attributes[IDENTITY] = identity
        return True

    async def _identity(
        self, name: str | None, password: str | None, address: str
    ) -> Identity | None:
        check = LoginCheck(self._users, self._verifier, self._sessions)
        login = await check.identify(name, password, address)
        return None if login is None else login.identity

    async def _assign_client_id(self, session: Session, name: str) -> None:
        """A player or display that sent no client id gets its username as one, as if it
        had sent it: an earlier session under that id is dropped, like amqtt does for a
        clean session reusing an id."""
        broker = self.context._broker_instance
        await broker._delete_session(name)
        session.client_id = name

    async def topic_filtering(
        self,
        *,
        session: Session | None = None,
        topic: str | None = None,
        action: Action | None = None,
    ) -> bool | None:
        identity = session.attributes.get(IDENTITY) if session is not None else None
        if not isinstance(identity, Identity) or topic is None or session is None:
            return False
        if action is Action.RECEIVE:
            # only sessions holding a filter wider than what they may read pay this check
            return not session.attributes.get(FILTERED) or self._acl.may_read(identity, topic)
        if action is Action.PUBLISH:
            allowed = self._acl.may_publish(identity, topic)
            if not allowed:
                _LOGGER.warning(
                    "dropped publish by %s to %s: not allowed", identity.username, topic
                )
            return allowed
        decision = self._acl.subscribe(identity, topic)
        if decision is SubscribeDecision.DENY:
            _LOGGER.info("refused subscription of %s to %s", identity.username, topic)
            return False
        if decision is SubscribeDecision.FILTERED:
            session.attributes[FILTERED] = True
        return True

    def retain_allowed(self, session: Session, topic: str) -> bool:
        """``delivery.RetainPolicy``: no retained commands (they would be replayed to the
        state service at each of its subscriptions, i.e. after every restart)."""
        identity = session.attributes.get(IDENTITY)
        return isinstance(identity, Identity) and self._acl.may_retain(identity, topic)

    def receive_needs_check(self, session: Session, topic_filter: str) -> bool:
        """``delivery.ReceiveScope``: only a filter wider than what the client may read (a
        display's ``R/#``) has its deliveries checked (once per topic, then cached); one
        granted whole needs no check per message."""
        identity = session.attributes.get(IDENTITY)
        if not isinstance(identity, Identity):
            return True
        return self._acl.subscribe(identity, topic_filter) is not SubscribeDecision.GRANT
