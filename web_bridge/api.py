"""The JSON API: player sessions, snapshots, history and the operator's join codes."""

# No "from __future__ import annotations": FastAPI must resolve the local dependency
# ``operator`` in the routes' annotations at definition time.

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.security import HTTPBasic, HTTPBasicCredentials
from pydantic import BaseModel, ConfigDict, Field

from hub.auth import (
    NewSession,
    Role,
    SeatError,
    SessionLimitError,
    TooManyAttemptsError,
    VerifierBusyError,
)
from hub.protocol.messages import Name, Timestamp
from web_bridge.errors import ApiError
from web_bridge.ports import Bridge
from web_bridge.sessions_api import session_admin_routes

__all__ = ["WS_PATH", "api_router"]

WS_PATH = "/mqtt"
MAX_HISTORY_LIMIT = 500
_basic = HTTPBasic(auto_error=False, realm="tablehub operator")


class SessionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    game: Annotated[str, Field(max_length=32)]
    name: Name
    join_code: Annotated[str, Field(max_length=16)]


class SessionResponse(BaseModel):
    """MQTT credentials: username and client id ``client_id``, password ``token``."""

    client_id: str
    token: str
    game: str
    topic_root: str
    ws_path: str
    expires_at: Timestamp


class HubInfo(BaseModel):
    """What a page needs to find its topics: the topic root, the games, the MQTT path."""

    topic_root: str
    games: list[str]
    ws_path: str
    public_url: str | None
    """The address phones open (join links start with it)."""


class JoinCodeResponse(BaseModel):
    game: str
    code: str
    url: str | None
    """The link a phone opens to join with this code (the QR code's content)."""


class HistoryResponse(BaseModel):
    game: str
    events: list[dict[str, Any]]
    next_after: int | None
    """Pass as ``after`` for the next page; null on the last page."""


def _address(request: Request) -> str:
    return request.client.host if request.client else "?"


def _too_many(retry_after: float) -> ApiError:
    return ApiError(
        429,
        "too_many_attempts",
        "too many attempts from your address; try again later",
        {"Retry-After": str(max(1, round(retry_after)))},
    )


async def _operator_login(
    bridge: Bridge,
    credentials: HTTPBasicCredentials,
    address: str,
    challenge: dict[str, str],
) -> str:
    """The operator's name, or ApiError 401 (throttled like every check) or 429."""
    try:
        async with bridge.logins.attempt(address) as attempt:
            user = await bridge.passwords.authenticate(
                credentials.username, credentials.password, address=address
            )
            if user is None or user.role is not Role.OPERATOR:
                await attempt.refuse()
                raise ApiError(401, "unauthorized", "not an operator's credentials", challenge)
    except TooManyAttemptsError as exc:
        raise _too_many(exc.retry_after) from None
    except VerifierBusyError:
        raise _too_many(1.0) from None
    return user.name


async def _check_join_code(bridge: Bridge, game: str, code: str, address: str) -> None:
    """Pass if ``code`` is the game's; else ApiError 403 (throttled) or 429. Every
    ``join_code_max_failures`` wrong codes the game's code rotates (and is published)."""
    try:
        async with bridge.logins.attempt(address) as attempt:
            if await asyncio.to_thread(bridge.join_codes.check, game, code):
                return
            if bridge.join_codes.take_rotation_due(game):
                await bridge.rotate_join_code(game)
            await attempt.refuse()
    except TooManyAttemptsError as exc:
        raise _too_many(exc.retry_after) from None
    raise ApiError(403, "wrong_join_code", "that is not the join code shown at the table")


async def _open_session(bridge: Bridge, game: str, name: str, address: str) -> NewSession:
    """A new session, let in by the broker (429 past a cap, 503 if the broker cannot)."""
    try:
        new = await asyncio.to_thread(bridge.sessions.create, game, name, address=address)
    except SessionLimitError as exc:
        raise ApiError(429, "too_many_sessions", str(exc)) from exc
    try:
        await bridge.seats.grant(new)
    except SeatError as exc:
        raise ApiError(503, "phones_unavailable", str(exc)) from exc
    return new


def api_router(bridge: Bridge) -> APIRouter:
    router = APIRouter(prefix="/api")

    def known_game(game: str) -> str:
        if game not in bridge.games:
            raise ApiError(404, "unknown_game", f"this hub runs: {', '.join(bridge.games)}")
        return game

    async def operator(
        request: Request,
        credentials: Annotated[HTTPBasicCredentials | None, Depends(_basic)],
    ) -> str:
        challenge = {"WWW-Authenticate": 'Basic realm="tablehub operator"'}
        if credentials is None:
            raise ApiError(401, "unauthorized", "operator credentials needed", challenge)
        return await _operator_login(bridge, credentials, _address(request), challenge)

    @router.get("/info", response_model=HubInfo)
    async def info() -> HubInfo:
        """The topic root and games of this hub, and where MQTT over WebSocket is."""
        return HubInfo(
            topic_root=bridge.topics.root,
            games=list(bridge.games),
            ws_path=WS_PATH,
            public_url=bridge.join_links.base,
        )

    @router.post(
        "/sessions",
        response_model=SessionResponse,
        responses={
            403: {"description": "wrong join code"},
            404: {"description": "no game"},
            429: {"description": "too many attempts from this address, or live sessions"},
            503: {"description": "the broker cannot seat phones (the message says why)"},
        },
    )
    async def create_session(body: SessionRequest, request: Request) -> SessionResponse:
        """A phone joins: the game's join code buys MQTT credentials for one player."""
        game = known_game(body.game)
        if (reason := bridge.seats.unavailable) is not None:
            raise ApiError(503, "phones_unavailable", reason)
        await _check_join_code(bridge, game, body.join_code.strip(), _address(request))
        new = await _open_session(bridge, game, body.name, _address(request))
        return SessionResponse(
            client_id=new.session.client_id,
            token=new.token,
            game=game,
            topic_root=bridge.topics.root,
            ws_path=WS_PATH,
            expires_at=new.session.expires_at,
        )

    @router.get("/games/{game}")
    async def game_snapshot(game: str) -> dict[str, Any]:
        """The game's current snapshot, as retained on ``R/games/{game}/state``."""
        snapshot = bridge.snapshots.snapshot(known_game(game))
        if snapshot is None:
            raise ApiError(503, "no_snapshot", "the hub has not published this game's state yet")
        return snapshot.to_wire()

    @router.get("/games/{game}/history", response_model=HistoryResponse)
    async def game_history(
        game: str,
        after: Annotated[int, Query(ge=0)] = 0,
        limit: Annotated[int, Query(ge=1, le=MAX_HISTORY_LIMIT)] = 100,
    ) -> HistoryResponse:
        """The game's events (one per accepted command) with version > ``after``."""
        events = await bridge.history.events(known_game(game), after=after, limit=limit)
        return HistoryResponse(
            game=game,
            events=[event.to_wire() for event in events],
            next_after=events[-1].version if len(events) == limit else None,
        )

    @router.get("/games/{game}/join-code", response_model=JoinCodeResponse)
    async def show_join_code(
        game: str, _who: Annotated[str, Depends(operator)]
    ) -> JoinCodeResponse:
        """The game's current join code (operators, HTTP Basic)."""
        known_game(game)
        code = await asyncio.to_thread(bridge.join_codes.code, game)
        return JoinCodeResponse(game=game, code=code, url=bridge.join_links.url(game, code))

    @router.post("/games/{game}/join-code", response_model=JoinCodeResponse)
    async def rotate_join_code(
        game: str, _who: Annotated[str, Depends(operator)]
    ) -> JoinCodeResponse:
        """Replace the game's join code (operators): sessions already given stay valid."""
        known_game(game)
        code = await bridge.rotate_join_code(game)
        return JoinCodeResponse(game=game, code=code, url=bridge.join_links.url(game, code))

    session_admin_routes(router, bridge, operator=operator, known_game=known_game)
    return router
