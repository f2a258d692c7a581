"""Whose credentials are these: one check for every broker that asks the hub (the embedded
broker's auth plugin, the NATS auth callout)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime

from hub.auth.acl import Identity
from hub.auth.roles import Role
from hub.auth.sessions import CLIENT_ID_PREFIX, Sessions
from hub.auth.users import Users
from hub.auth.verifier import PasswordVerifier

__all__ = ["Login", "LoginCheck"]


@dataclass(frozen=True, slots=True)
class Login:
    identity: Identity
    expires_at: datetime | None = None
    """A player session's end; None for users."""


@dataclass(frozen=True, slots=True)
class LoginCheck:
    users: Users
    verifier: PasswordVerifier
    """argon2 on its own bounded pool."""
    sessions: Sessions | None = None
    """Player sessions (phones), or None where there are none."""

    async def identify(self, name: str | None, password: str | None, address: str) -> Login | None:
        """Who the credentials belong to: a player session (cheap check, default pool) for
        a session's id, else a user of the store (argon2 on the verifier's pool; an unknown
        name costs the same). Raises ``VerifierBusyError``."""
        if not name or password is None:
            return None
        if (
            self.sessions is not None
            and name.startswith(CLIENT_ID_PREFIX)
            and self.users.get(name) is None
        ):
            player = await asyncio.to_thread(self.sessions.authenticate, name, password)
            if player is None:
                return None
            return Login(Identity(player.client_id, Role.PLAYER), player.expires_at)
        user = await self.verifier.authenticate(name, password, address=address)
        return None if user is None else Login(Identity(user.name, user.role))
