"""Player sessions: short-lived MQTT credentials the web bridge hands to phones.

``DATA_DIR/sessions.sqlite3`` (mode 0600) holds one row per session: its client id
(``p-`` + a short random id, which is also its MQTT username), the SHA-256 of its token
(the token itself is never stored), the player's name, the game and the expiry. The
broker asks ``authenticate`` on every login of a username the user store does not know.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import sqlite3
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Self

from hub.auth.errors import AuthError
from hub.clock import utc_now

__all__ = ["DEFAULT_SESSION_TTL", "NewSession", "PlayerSession", "SessionStore"]

DEFAULT_SESSION_TTL = 12 * 3600.0
"""Seconds a player session is valid (``session_ttl``)."""
CLIENT_ID_PREFIX = "p-"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS sessions (
    client_id TEXT PRIMARY KEY, token_sha256 BLOB NOT NULL, name TEXT NOT NULL,
    game TEXT NOT NULL, created_at REAL NOT NULL, expires_at REAL NOT NULL
) WITHOUT ROWID;
"""


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


@dataclass(frozen=True, slots=True)
class PlayerSession:
    client_id: str
    name: str
    game: str
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class NewSession:
    """A session just created: the only time its token is known."""

    session: PlayerSession
    token: str


class SessionStore:
    """``with SessionStore(data_dir, ttl=...) as sessions:``; thread-safe, short queries."""

    FILENAME = "sessions.sqlite3"

    def __init__(self, data_dir: Path, *, ttl: float = DEFAULT_SESSION_TTL) -> None:
        if ttl <= 0:
            msg = "the session lifetime must be positive"
            raise AuthError(msg)
        self.path = data_dir / self.FILENAME
        self.ttl = timedelta(seconds=ttl)
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None

    def __enter__(self) -> Self:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        os.close(fd)
        try:
            db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            msg = f"cannot open the session store {self.path}: {exc}"
            raise AuthError(msg) from exc
        self._db = db
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    @property
    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            msg = "the session store is not open"
            raise AuthError(msg)
        return self._db

    def create(self, game: str, name: str, *, now: datetime | None = None) -> NewSession:
        """A new session for player ``name`` in ``game``; expired ones are purged."""
        now = now or utc_now()
        token = secrets.token_urlsafe(32)
        session = PlayerSession(
            client_id=CLIENT_ID_PREFIX + secrets.token_hex(6),
            name=name,
            game=game,
            expires_at=now + self.ttl,
        )
        with self._lock:
            self._conn.execute("DELETE FROM sessions WHERE expires_at <= ?", (now.timestamp(),))
            self._conn.execute(
                "INSERT INTO sessions VALUES (?, ?, ?, ?, ?, ?)",
                (
                    session.client_id,
                    _digest(token),
                    name,
                    game,
                    now.timestamp(),
                    session.expires_at.timestamp(),
                ),
            )
        return NewSession(session=session, token=token)

    def authenticate(
        self, client_id: str, token: str, *, now: datetime | None = None
    ) -> PlayerSession | None:
        """The session if ``token`` is its token and it has not expired."""
        if not client_id.startswith(CLIENT_ID_PREFIX):
            return None
        with self._lock:
            row = self._conn.execute(
                "SELECT token_sha256, name, game, expires_at FROM sessions WHERE client_id = ?",
                (client_id,),
            ).fetchone()
        if row is None or not hmac.compare_digest(bytes(row[0]), _digest(token)):
            return None
        expires_at = datetime.fromtimestamp(float(row[3]), UTC)
        if expires_at <= (now or utc_now()):
            return None
        return PlayerSession(
            client_id=client_id, name=str(row[1]), game=str(row[2]), expires_at=expires_at
        )

    def active(self, *, now: datetime | None = None) -> int:
        """How many sessions have not expired."""
        with self._lock:
            row = self._conn.execute(
                "SELECT count(*) FROM sessions WHERE expires_at > ?",
                ((now or utc_now()).timestamp(),),
            ).fetchone()
        return int(row[0])
