"""``SessionSweeper``: ends expired sessions, and those revoked by another process, on time.

``async with SessionSweeper(sessions, interval):`` calls ``SessionStore.sweep`` every
``interval`` seconds (in a worker thread), so that the store's ``on_end`` listeners hear
of a session that expired or that ``hub sessions revoke`` revoked beside the running hub.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from types import TracebackType
from typing import Self

from hub.auth.errors import AuthError
from hub.auth.sessions import Sessions

__all__ = ["SessionSweeper"]

_LOGGER = logging.getLogger(__name__)


class SessionSweeper:
    def __init__(self, sessions: Sessions, interval: float) -> None:
        self._sessions = sessions
        self._interval = interval
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Self:
        self._task = asyncio.create_task(self._run(), name="session-sweeper")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                ended = await asyncio.to_thread(self._sessions.sweep)
            except (AuthError, sqlite3.Error) as exc:  # the disk went away: try later
                _LOGGER.warning("could not sweep the player sessions: %s", exc)
                continue
            for session in ended:
                _LOGGER.info("player session %s ended: %s", session.client_id, session.reason)
