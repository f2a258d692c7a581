"""Player sessions: short-lived MQTT credentials the web bridge hands to phones.

``DATA_DIR/sessions.sqlite3`` (mode 0600) holds one row per session: its client id
(``p-`` + a short random id, which is also its MQTT username), the SHA-256 of its token
(the token itself is never stored), the player's name, the game, the address it was asked
from, the expiry, and when it was revoked. The broker asks ``authenticate`` on every login
of a username the user store does not know.

A session ends when it expires or is revoked (a ``kick``, the operator's API or ``hub
sessions revoke``, from any process on the data dir). ``on_end`` listeners hear of each
session this process created or authenticated once it ends: at once for a revocation made
here, at the next ``sweep`` otherwise (the hub sweeps every ``session_sweep_interval``).
That is the seam for whatever must take an ended session back: the embedded broker closes
its connection; another backend (a NATS KV store, Mosquitto's dynamic security) can
delete its client there.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from types import TracebackType
from typing import Protocol, Self

from hub.auth.errors import AuthError, SessionLimitError
from hub.clock import utc_now

__all__ = [
    "DEFAULT_SESSION_TTL",
    "EndReason",
    "NewSession",
    "PlayerSession",
    "SessionEnded",
    "SessionListener",
    "SessionStore",
    "Sessions",
]

DEFAULT_SESSION_TTL = 12 * 3600.0
"""Seconds a player session is valid (``session_ttl``)."""
CLIENT_ID_PREFIX = "p-"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS sessions (
    client_id TEXT PRIMARY KEY, token_sha256 BLOB NOT NULL, name TEXT NOT NULL,
    game TEXT NOT NULL, created_at REAL NOT NULL, expires_at REAL NOT NULL
) WITHOUT ROWID
"""
_ADDED_COLUMNS = {"address": "TEXT NOT NULL DEFAULT ''", "revoked_at": "REAL"}
"""Columns newer than the first schema, added to an older file on open."""


def _prepare(db: sqlite3.Connection, patience: float = 30.0) -> None:
    """WAL mode and the current schema. Processes that open a new file at once can meet
    in a lock SQLite reports at once instead of waiting on (a deadlock between two
    upgrading readers): such an attempt is simply made again."""
    deadline = time.monotonic() + patience
    while True:
        try:
            db.execute("PRAGMA journal_mode=WAL")
            _upgrade(db)
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.01 + secrets.randbelow(40) / 1000)
        else:
            return


def _upgrade(db: sqlite3.Connection) -> None:
    """Create the table or add the newer columns, in one write transaction: the hub and a
    web bridge opening the same file at once must not both add a column."""
    db.execute("BEGIN IMMEDIATE")
    try:
        db.execute(_SCHEMA)
        have = {str(row[1]) for row in db.execute("PRAGMA table_info(sessions)")}
        for column, kind in _ADDED_COLUMNS.items():
            if column not in have:
                db.execute(f"ALTER TABLE sessions ADD COLUMN {column} {kind}")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


# queries are spelled out whole: a live session is "revoked_at IS NULL AND expires_at > ?"
_SELECT_LIVE = (
    "SELECT client_id, name, game, address, created_at, expires_at FROM sessions"
    " WHERE revoked_at IS NULL AND expires_at > ?"
)
_COUNT_LIVE = {
    "game": "SELECT count(*) FROM sessions"
    " WHERE game = ? AND revoked_at IS NULL AND expires_at > ?",
    "address": "SELECT count(*) FROM sessions"
    " WHERE address = ? AND revoked_at IS NULL AND expires_at > ?",
}


@dataclass(frozen=True, slots=True)
class PlayerSession:
    client_id: str
    name: str
    game: str
    expires_at: datetime
    created_at: datetime
    address: str = ""
    """The address that asked for it (the per-address cap counts these)."""


def _session(row: tuple[object, ...]) -> PlayerSession:
    client_id, name, game, address, created_at, expires_at = row
    return PlayerSession(
        client_id=str(client_id),
        name=str(name),
        game=str(game),
        address=str(address),
        created_at=datetime.fromtimestamp(float(str(created_at)), UTC),
        expires_at=datetime.fromtimestamp(float(str(expires_at)), UTC),
    )


@dataclass(frozen=True, slots=True)
class NewSession:
    """A session just created: the only time its token is known."""

    session: PlayerSession
    token: str


class EndReason(StrEnum):
    REVOKED = "revoked"
    """Kicked from its seat, or revoked by the operator."""
    EXPIRED = "expired"


@dataclass(frozen=True, slots=True)
class SessionEnded:
    client_id: str
    reason: EndReason


SessionListener = Callable[[SessionEnded], None]
"""Told of an ended session, in the thread that noticed (keep it short and thread-safe)."""


class Sessions(Protocol):
    """What the hub, the bridge and the login checks need of a session store: SQLite
    (``SessionStore``) or a NATS cluster's key-value bucket (``hub.nats.stores``)."""

    def create(
        self, game: str, name: str, *, address: str = "", now: datetime | None = None
    ) -> NewSession: ...

    def authenticate(
        self, client_id: str, token: str, *, now: datetime | None = None
    ) -> PlayerSession | None: ...

    def live(
        self, *, game: str | None = None, now: datetime | None = None
    ) -> list[PlayerSession]: ...

    def active(self, *, now: datetime | None = None) -> int: ...

    def revoke(self, client_id: str, *, now: datetime | None = None) -> PlayerSession | None: ...

    def on_end(self, listener: SessionListener) -> None: ...

    def sweep(self, *, now: datetime | None = None) -> list[SessionEnded]: ...


def new_session(ttl: timedelta, game: str, name: str, address: str, now: datetime) -> NewSession:
    """A new session (its token random, its client id ``p-`` + a short random id)."""
    token = secrets.token_urlsafe(32)
    session = PlayerSession(
        client_id=CLIENT_ID_PREFIX + secrets.token_hex(6),
        name=name,
        game=game,
        address=address,
        created_at=now,
        expires_at=now + ttl,
    )
    return NewSession(session=session, token=token)


def token_digest(token: str) -> bytes:
    """What a store keeps of a token: its SHA-256."""
    return hashlib.sha256(token.encode()).digest()


def limit_message(where: str, cap: int) -> str:
    return f"{where} already holds {cap} live player sessions; try again later"


class SessionStore:
    """``with SessionStore(data_dir, ttl=...) as sessions:``; thread-safe, short queries.

    ``max_per_game`` and ``max_per_address`` cap the live sessions (0: no cap).
    """

    FILENAME = "sessions.sqlite3"

    def __init__(
        self,
        data_dir: Path,
        *,
        ttl: float = DEFAULT_SESSION_TTL,
        max_per_game: int = 0,
        max_per_address: int = 0,
    ) -> None:
        if ttl <= 0:
            msg = "the session lifetime must be positive"
            raise AuthError(msg)
        self.path = data_dir / self.FILENAME
        self.ttl = timedelta(seconds=ttl)
        self.max_per_game = max_per_game
        self.max_per_address = max_per_address
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None
        self._listeners: list[SessionListener] = []
        self._seen: set[str] = set()
        """Sessions created or authenticated here and not yet reported ended."""

    def __enter__(self) -> Self:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        os.close(fd)
        try:
            db = sqlite3.connect(
                self.path, check_same_thread=False, isolation_level=None, timeout=30
            )
            _prepare(db)
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

    def create(
        self, game: str, name: str, *, address: str = "", now: datetime | None = None
    ) -> NewSession:
        """A new session for player ``name`` in ``game``, asked from ``address``; expired
        ones are purged. Raises ``SessionLimitError`` past a cap."""
        now = now or utc_now()
        new = new_session(self.ttl, game, name, address, now)
        session, token = new.session, new.token
        with self._lock:
            db = self._conn
            # one write transaction: another process's bridge or hub counting at the same
            # time waits for it, so the caps hold across processes
            db.execute("BEGIN IMMEDIATE")
            try:
                db.execute("DELETE FROM sessions WHERE expires_at <= ?", (now.timestamp(),))
                self._check_caps(db, game, address, now)
                db.execute(
                    "INSERT INTO sessions (client_id, name, game, address, created_at,"
                    " expires_at, token_sha256) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (
                        session.client_id,
                        name,
                        game,
                        address,
                        now.timestamp(),
                        session.expires_at.timestamp(),
                        token_digest(token),
                    ),
                )
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
            self._seen.add(session.client_id)
        return new

    def _check_caps(self, db: sqlite3.Connection, game: str, address: str, now: datetime) -> None:
        caps = (("game", game, self.max_per_game), ("address", address, self.max_per_address))
        for column, value, cap in caps:
            if not cap:
                continue
            row = db.execute(_COUNT_LIVE[column], (value, now.timestamp())).fetchone()
            if int(row[0]) >= cap:
                where = f"game {game!r}" if column == "game" else "this address"
                raise SessionLimitError(limit_message(where, cap))

    def authenticate(
        self, client_id: str, token: str, *, now: datetime | None = None
    ) -> PlayerSession | None:
        """The session if ``token`` is its token and it has neither expired nor been
        revoked."""
        if not client_id.startswith(CLIENT_ID_PREFIX):
            return None
        with self._lock:
            row = self._conn.execute(
                "SELECT token_sha256, client_id, name, game, address, created_at,"
                " expires_at FROM sessions"
                " WHERE client_id = ? AND revoked_at IS NULL AND expires_at > ?",
                (client_id, (now or utc_now()).timestamp()),
            ).fetchone()
            if row is None or not hmac.compare_digest(bytes(row[0]), token_digest(token)):
                return None
            self._seen.add(client_id)
        return _session(row[1:])

    def live(self, *, game: str | None = None, now: datetime | None = None) -> list[PlayerSession]:
        """The sessions neither expired nor revoked (of one game, or all), oldest first."""
        query = _SELECT_LIVE
        args: tuple[object, ...] = ((now or utc_now()).timestamp(),)
        if game is not None:
            query += " AND game = ?"
            args = (*args, game)
        with self._lock:
            rows = self._conn.execute(query + " ORDER BY created_at, client_id", args).fetchall()
        return [_session(row) for row in rows]

    def active(self, *, now: datetime | None = None) -> int:
        """How many sessions have neither expired nor been revoked."""
        with self._lock:
            row = self._conn.execute(
                "SELECT count(*) FROM sessions WHERE revoked_at IS NULL AND expires_at > ?",
                ((now or utc_now()).timestamp(),),
            ).fetchone()
        return int(row[0])

    def revoke(self, client_id: str, *, now: datetime | None = None) -> PlayerSession | None:
        """End a live session now (its token is refused from then on); None if there is no
        live session ``client_id``. Listeners hear of it before this returns."""
        now = now or utc_now()
        with self._lock:
            row = self._conn.execute(
                "UPDATE sessions SET revoked_at = ?"
                " WHERE client_id = ? AND revoked_at IS NULL AND expires_at > ?"
                " RETURNING client_id, name, game, address, created_at, expires_at",
                (now.timestamp(), client_id, now.timestamp()),
            ).fetchone()
            self._seen.discard(client_id)
        if row is None:
            return None
        self._tell(SessionEnded(client_id, EndReason.REVOKED))
        return _session(row)

    def on_end(self, listener: SessionListener) -> None:
        """Call ``listener`` for each session seen here once it ends (see the module)."""
        self._listeners.append(listener)

    def sweep(self, *, now: datetime | None = None) -> list[SessionEnded]:
        """Report the sessions seen here that ended since (expired, or revoked by another
        process) to the listeners, and purge expired rows."""
        now = now or utc_now()
        with self._lock:
            db = self._conn
            live = {
                str(r[0])
                for r in db.execute(
                    "SELECT client_id FROM sessions WHERE revoked_at IS NULL AND expires_at > ?",
                    (now.timestamp(),),
                )
            }
            gone = self._seen - live
            revoked = {
                str(r[0])
                for r in db.execute("SELECT client_id FROM sessions WHERE revoked_at IS NOT NULL")
            }
            db.execute("DELETE FROM sessions WHERE expires_at <= ?", (now.timestamp(),))
            self._seen -= gone
        ended = [
            SessionEnded(cid, EndReason.REVOKED if cid in revoked else EndReason.EXPIRED)
            for cid in sorted(gone)
        ]
        for item in ended:
            self._tell(item)
        return ended

    def _tell(self, ended: SessionEnded) -> None:
        for listener in self._listeners:
            listener(ended)
