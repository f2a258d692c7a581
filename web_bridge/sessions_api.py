"""The operator's view of player sessions: list a game's live ones, revoke one.

``GET /api/games/{game}/sessions`` and ``DELETE /api/sessions/{client_id}``, both behind
the operator's HTTP Basic login (the ``operator`` dependency of ``api.api_router``).
"""

# No "from __future__ import annotations": FastAPI resolves the routes' annotations
# (the ``operator`` dependency passed in) at definition time.

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Annotated, Self

from fastapi import APIRouter, Depends, Response
from pydantic import BaseModel

from hub.auth import PlayerSession
from hub.protocol.messages import Timestamp
from web_bridge.errors import ApiError
from web_bridge.ports import Bridge

__all__ = ["SessionInfo", "SessionList", "session_admin_routes"]

_LOGGER = logging.getLogger(__name__)


class SessionInfo(BaseModel):
    """A live player session, as the operator sees it (never its token)."""

    client_id: str
    name: str
    game: str
    address: str
    created_at: Timestamp
    expires_at: Timestamp

    @classmethod
    def of(cls, session: PlayerSession) -> Self:
        return cls(
            client_id=session.client_id,
            name=session.name,
            game=session.game,
            address=session.address,
            created_at=session.created_at,
            expires_at=session.expires_at,
        )


class SessionList(BaseModel):
    game: str
    sessions: list[SessionInfo]


def session_admin_routes(
    router: APIRouter,
    bridge: Bridge,
    *,
    operator: Callable[..., Awaitable[str]],
    known_game: Callable[[str], str],
) -> None:
    @router.get("/games/{game}/sessions", response_model=SessionList)
    async def list_sessions(game: str, _who: Annotated[str, Depends(operator)]) -> SessionList:
        """The game's live player sessions, oldest first (operators, HTTP Basic)."""
        live = await asyncio.to_thread(bridge.sessions.live, game=known_game(game))
        return SessionList(game=game, sessions=[SessionInfo.of(s) for s in live])

    @router.delete(
        "/sessions/{client_id}",
        status_code=204,
        response_class=Response,
        responses={404: {"description": "no live session with that client id"}},
    )
    async def revoke_session(client_id: str, who: Annotated[str, Depends(operator)]) -> Response:
        """End a player session now (operators): its MQTT connection closes and its token
        is refused from then on. The seat it holds stays taken (``kick`` frees it)."""
        revoked = await asyncio.to_thread(bridge.sessions.revoke, client_id[:64])
        if revoked is None:
            raise ApiError(404, "unknown_session", "no live player session has that client id")
        _LOGGER.info("%s revoked the player session %s", who, revoked.client_id)
        return Response(status_code=204)
