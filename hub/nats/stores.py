"""Users, player sessions and join codes in a NATS cluster's key-value buckets.

The same seams as the file and SQLite stores (``hub.auth.Users``, ``Sessions``,
``JoinCodes``), over ``hub.nats.kv`` mirrors: reads come from the local copy (no I/O),
writes go through the cluster, so that every hub and web bridge attached to the cluster
answers the same. Buckets (``PREFIX_users``, ``PREFIX_sessions``, ``PREFIX_join_codes``)
are replicated on min(3, nodes) nodes.

- users: one key per user (its name, base64url), the same record as ``users.json``
  (argon2 and Mosquitto hashes, never a password). ``add`` creates the key only if it does
  not exist, so two processes cannot both add a name.
- sessions: one key per session (its client id), the SHA-256 of its token (never the
  token), expiry and revocation. The caps (per game, per address) hold across processes:
  every new session is first entered in one ``ledger`` key, written with compare-and-set
  on its revision (the loser of a race reads again and counts again).
- join codes: one key per game; a game's first code is created only if none exists, a
  rotation replaces the revision it read. Wrong guesses are counted per process.

Logins read their user or session from the cluster, not the copy (which may lag by a
moment): a session minted through another node a moment ago logs in, a user removed or a
session revoked a moment ago does not.
"""

from __future__ import annotations

import base64
import contextlib
import hmac
import json
import threading
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from hub.auth import AuthError, Role, SessionLimitError, User, UserExistsError, UserNotFoundError
from hub.auth.joincodes import (
    DEFAULT_JOIN_CODE_DIGITS,
    DEFAULT_JOIN_CODE_MAX_FAILURES,
    WrongGuesses,
    check_join_code_settings,
    new_join_code,
    same_code,
)
from hub.auth.sessions import (
    CLIENT_ID_PREFIX,
    DEFAULT_SESSION_TTL,
    EndReason,
    NewSession,
    PlayerSession,
    SessionEnded,
    SessionListener,
    limit_message,
    new_session,
    token_digest,
)
from hub.auth.users import UserLookup, new_user
from hub.clock import utc_now
from hub.nats.config import read_callout
from hub.nats.errors import NatsError
from hub.nats.kv import Conflict, KvCluster, Mirror
from hub.protocol.broker_url import BrokerUrl

__all__ = [
    "DEFAULT_PREFIX",
    "ClusterStores",
    "KvJoinCodeStore",
    "KvSessionStore",
    "KvUserStore",
    "cluster_stores",
    "open_buckets",
]

DEFAULT_PREFIX = "tablehub"
LEDGER = "ledger"
"""The sessions bucket's key listing the live sessions (for the caps)."""
_CAS_ATTEMPTS = 100


def _key(text: str) -> str:
    """Any text as a key (base64url without padding: letters, digits, ``-``, ``_``)."""
    return "k" + base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def _failed(what: str, exc: NatsError) -> AuthError:
    return AuthError(f"{what}: {exc}")


def open_buckets(kv: KvCluster, prefix: str = DEFAULT_PREFIX) -> tuple[Mirror, Mirror, Mirror]:
    """The users, sessions and join codes buckets (created if missing)."""
    return (
        kv.bucket(f"{prefix}_users"),
        kv.bucket(f"{prefix}_sessions"),
        kv.bucket(f"{prefix}_join_codes"),
    )


# --- users -------------------------------------------------------------------------------
def _user(value: bytes) -> User:
    try:
        fields = json.loads(value)
        return User(**{**fields, "role": Role(fields["role"])})
    except (ValueError, KeyError, TypeError) as exc:
        msg = f"cannot read a user of the cluster's user store: {exc}"
        raise AuthError(msg) from exc


class KvUserStore(UserLookup):
    """``hub.auth.Users`` in a bucket (thread-safe reads from the mirror)."""

    def __init__(self, bucket: Mirror) -> None:
        super().__init__()
        self._bucket = bucket
        self._changes = -1

    def refresh(self) -> None:
        """Rebuild the users from the copy if it changed since."""
        changes = self._bucket.changes
        if changes == self._changes:
            return
        users = [_user(entry.value) for _, entry in self._bucket.items()]
        self._users, self._changes = {user.name: user for user in users}, changes

    def login(self, name: str) -> User | None:
        """As ``UserLookup.login``, read from the cluster (not the copy, which may lag by a
        moment): a user just added or removed elsewhere is known at once. Logins cost an
        argon2 check anyway; this read is ~1 ms."""
        try:
            entry = self._bucket.fetch(_key(name))
        except NatsError as exc:
            raise _failed("cannot read the cluster's user store", exc) from exc
        if entry is None:
            return None
        user = _user(entry.value)
        return None if user.role is Role.SERVICE else user

    def add(self, name: str, role: Role, password: str) -> User:
        user = new_user(name, role, password)
        try:
            self._bucket.put(_key(name), json.dumps(asdict(user)).encode(), revision=0)
        except Conflict as exc:
            msg = f"user {name!r} already exists"
            raise UserExistsError(msg) from exc
        except NatsError as exc:
            raise _failed(f"cannot add user {name!r}", exc) from exc
        return user

    def put(self, user: User) -> None:
        """Store ``user`` as it is (its hashes already made), replacing any of that name:
        users moved from a data dir's store into the cluster keep their passwords."""
        try:
            self._bucket.put(_key(user.name), json.dumps(asdict(user)).encode())
        except NatsError as exc:
            raise _failed(f"cannot store user {user.name!r}", exc) from exc

    def remove(self, name: str) -> None:
        try:
            if self._bucket.fetch(_key(name)) is None:
                msg = f"no user {name!r}"
                raise UserNotFoundError(msg)
            self._bucket.delete(_key(name))
        except NatsError as exc:
            raise _failed(f"cannot remove user {name!r}", exc) from exc


# --- player sessions ---------------------------------------------------------------------
def _record(session: PlayerSession, token: str) -> dict[str, Any]:
    return {
        "client_id": session.client_id,
        "token_sha256": token_digest(token).hex(),
        "name": session.name,
        "game": session.game,
        "address": session.address,
        "created_at": session.created_at.timestamp(),
        "expires_at": session.expires_at.timestamp(),
        "revoked_at": None,
    }


def _session(record: dict[str, Any]) -> PlayerSession:
    return PlayerSession(
        client_id=str(record["client_id"]),
        name=str(record["name"]),
        game=str(record["game"]),
        address=str(record["address"]),
        created_at=datetime.fromtimestamp(float(record["created_at"]), UTC),
        expires_at=datetime.fromtimestamp(float(record["expires_at"]), UTC),
    )


def _live(record: dict[str, Any], now: datetime) -> bool:
    return record["revoked_at"] is None and float(record["expires_at"]) > now.timestamp()


class KvSessionStore:
    """``hub.auth.Sessions`` in a bucket; thread-safe. ``with`` is accepted (and does
    nothing: the ``KvCluster`` owns the connection) so it stands where SQLite's does."""

    def __init__(
        self,
        bucket: Mirror,
        *,
        ttl: float = DEFAULT_SESSION_TTL,
        max_per_game: int = 0,
        max_per_address: int = 0,
    ) -> None:
        if ttl <= 0:
            msg = "the session lifetime must be positive"
            raise AuthError(msg)
        self._bucket = bucket
        self.ttl = timedelta(seconds=ttl)
        self.max_per_game = max_per_game
        self.max_per_address = max_per_address
        self._lock = threading.Lock()
        self._listeners: list[SessionListener] = []
        self._seen: set[str] = set()

    def __enter__(self) -> KvSessionStore:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def _records(self) -> dict[str, dict[str, Any]]:
        records = {}
        for key, entry in self._bucket.items():
            if key.startswith(CLIENT_ID_PREFIX):
                try:
                    records[key] = json.loads(entry.value)
                except ValueError:
                    continue
        return records

    def _record(self, client_id: str, *, fresh: bool = False) -> tuple[dict[str, Any], int] | None:
        entry = self._bucket.fetch(client_id) if fresh else self._bucket.get(client_id)
        if entry is None:
            return None
        try:
            return json.loads(entry.value), entry.revision
        except ValueError:
            return None

    def create(
        self, game: str, name: str, *, address: str = "", now: datetime | None = None
    ) -> NewSession:
        now = now or utc_now()
        new = new_session(self.ttl, game, name, address, now)
        session = new.session
        try:
            self._enter_in_ledger(session, now)
            self._bucket.put(
                session.client_id, json.dumps(_record(session, new.token)).encode(), revision=0
            )
        except NatsError as exc:
            raise _failed("cannot create a player session in the cluster", exc) from exc
        with self._lock:
            self._seen.add(session.client_id)
        return new

    def _enter_in_ledger(self, session: PlayerSession, now: datetime) -> None:
        """Count the live sessions and add this one, in one compare-and-set."""
        records = self._records()
        for _ in range(_CAS_ATTEMPTS):
            entry = self._bucket.fetch(LEDGER)
            ledger: dict[str, list[Any]] = json.loads(entry.value) if entry else {}
            ledger = {
                cid: item
                for cid, item in ledger.items()
                if float(item[2]) > now.timestamp()
                and (cid not in records or _live(records[cid], now))
            }
            caps = (
                ("game", 0, session.game, self.max_per_game),
                ("address", 1, session.address, self.max_per_address),
            )
            for what, field, value, cap in caps:
                if cap and sum(1 for item in ledger.values() if item[field] == value) >= cap:
                    where = f"game {session.game!r}" if what == "game" else "this address"
                    raise SessionLimitError(limit_message(where, cap))
            ledger[session.client_id] = [
                session.game,
                session.address,
                session.expires_at.timestamp(),
            ]
            try:
                self._bucket.put(
                    LEDGER, json.dumps(ledger).encode(), revision=entry.revision if entry else 0
                )
            except Conflict:
                records = self._records()
                continue
            return
        msg = "too many player sessions created at once; try again"
        raise SessionLimitError(msg)

    def authenticate(
        self, client_id: str, token: str, *, now: datetime | None = None
    ) -> PlayerSession | None:
        if not client_id.startswith(CLIENT_ID_PREFIX):
            return None
        now = now or utc_now()
        try:
            found = self._record(client_id, fresh=True)  # not the copy: it may lag
        except NatsError as exc:
            raise _failed("cannot read the cluster's player sessions", exc) from exc
        if found is None:
            return None
        record = found[0]
        if not _live(record, now) or not hmac.compare_digest(
            bytes.fromhex(str(record["token_sha256"])), token_digest(token)
        ):
            return None
        with self._lock:
            self._seen.add(client_id)
        return _session(record)

    def live(self, *, game: str | None = None, now: datetime | None = None) -> list[PlayerSession]:
        now = now or utc_now()
        sessions = [
            _session(record)
            for record in self._records().values()
            if _live(record, now) and (game is None or record["game"] == game)
        ]
        return sorted(sessions, key=lambda s: (s.created_at, s.client_id))

    def active(self, *, now: datetime | None = None) -> int:
        return len(self.live(now=now))

    def revoke(self, client_id: str, *, now: datetime | None = None) -> PlayerSession | None:
        now = now or utc_now()
        try:
            for _ in range(_CAS_ATTEMPTS):
                found = self._record(client_id, fresh=True)
                if found is None or not _live(found[0], now):
                    with self._lock:
                        self._seen.discard(client_id)
                    return None
                record, revision = found
                record["revoked_at"] = now.timestamp()
                try:
                    self._bucket.put(client_id, json.dumps(record).encode(), revision=revision)
                except Conflict:
                    continue
                break
            else:
                msg = f"cannot revoke {client_id}: it keeps changing"
                raise AuthError(msg)
        except NatsError as exc:
            raise _failed(f"cannot revoke the player session {client_id}", exc) from exc
        with self._lock:
            self._seen.discard(client_id)
        self._tell(SessionEnded(client_id, EndReason.REVOKED))
        return _session(record)

    def on_end(self, listener: SessionListener) -> None:
        self._listeners.append(listener)

    def sweep(self, *, now: datetime | None = None) -> list[SessionEnded]:
        """Report the sessions seen here that ended since (expired, or revoked by another
        process) and delete the expired ones from the bucket."""
        now = now or utc_now()
        try:
            self._bucket.catch_up()
            records = self._records()
            for client_id, record in records.items():
                if float(record["expires_at"]) <= now.timestamp():
                    self._bucket.delete(client_id)
        except NatsError as exc:
            raise _failed("cannot sweep the cluster's player sessions", exc) from exc
        live = {cid for cid, record in records.items() if _live(record, now)}
        with self._lock:
            gone = self._seen - live
            self._seen -= gone
        ended = [
            SessionEnded(
                cid,
                EndReason.REVOKED
                if cid in records and records[cid]["revoked_at"] is not None
                else EndReason.EXPIRED,
            )
            for cid in sorted(gone)
        ]
        for item in ended:
            self._tell(item)
        return ended

    def _tell(self, ended: SessionEnded) -> None:
        for listener in self._listeners:
            listener(ended)


# --- join codes --------------------------------------------------------------------------
class KvJoinCodeStore:
    """``hub.auth.JoinCodes`` in a bucket; thread-safe."""

    def __init__(
        self,
        bucket: Mirror,
        *,
        digits: int = DEFAULT_JOIN_CODE_DIGITS,
        rotate_after: int = DEFAULT_JOIN_CODE_MAX_FAILURES,
    ) -> None:
        check_join_code_settings(digits, rotate_after)
        self._bucket = bucket
        self.digits = digits
        self.rotate_after = rotate_after
        self._wrong = WrongGuesses(rotate_after)

    def _current(self, game: str) -> str | None:
        entry = self._bucket.get(_key(game))
        return None if entry is None else entry.value.decode()

    def code(self, game: str) -> str:
        current = self._current(game)
        if current is not None:
            return current
        try:
            for _ in range(_CAS_ATTEMPTS):
                entry = self._bucket.fetch(_key(game))
                if entry is not None:
                    return entry.value.decode()
                code = new_join_code(self.digits)
                try:
                    self._bucket.put(_key(game), code.encode(), revision=0)
                except Conflict:
                    continue
                return code
        except NatsError as exc:
            raise _failed(f"cannot read the join code of {game!r}", exc) from exc
        msg = f"cannot make a join code for {game!r}"
        raise AuthError(msg)

    def rotate(self, game: str) -> str:
        try:
            for _ in range(_CAS_ATTEMPTS):
                entry = self._bucket.fetch(_key(game))
                old = entry.value.decode() if entry else None
                code = new_join_code(self.digits, old)
                try:
                    self._bucket.put(
                        _key(game), code.encode(), revision=entry.revision if entry else 0
                    )
                except Conflict:
                    continue
                self._wrong.reset(game)
                return code
        except NatsError as exc:
            raise _failed(f"cannot rotate the join code of {game!r}", exc) from exc
        msg = f"cannot rotate the join code of {game!r}: it keeps changing"
        raise AuthError(msg)

    def check(self, game: str, code: str) -> bool:
        right = same_code(self._current(game), code)
        if not right:  # rotated a moment ago elsewhere?
            try:
                entry = self._bucket.fetch(_key(game))
            except NatsError as exc:
                raise _failed(f"cannot read the join code of {game!r}", exc) from exc
            right = same_code(entry.value.decode() if entry else None, code)
        if not right:
            self._wrong.count(game)
        return right

    def take_rotation_due(self, game: str) -> bool:
        return self._wrong.take_rotation_due(game)


# --- composition -------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class ClusterStores:
    users: KvUserStore
    sessions: KvSessionStore
    join_codes: KvJoinCodeStore


@contextlib.contextmanager
def cluster_stores(
    url: BrokerUrl,
    *,
    session_ttl: float = DEFAULT_SESSION_TTL,
    max_sessions_per_game: int = 0,
    max_sessions_per_address: int = 0,
    join_code_digits: int = DEFAULT_JOIN_CODE_DIGITS,
    join_code_max_failures: int = DEFAULT_JOIN_CODE_MAX_FAILURES,
    prefix: str = DEFAULT_PREFIX,
) -> Iterator[ClusterStores]:
    """The stores of the cluster named by ``url`` (``hub nats-config``'s ``service_url``:
    its user and password, and the NATS addresses of its ``?callout=`` file, the node
    ``url`` names first tried first)."""
    if url.callout is None or url.username is None or url.password is None:
        msg = "the NATS cluster's stores need its service URL (with ?callout=)"
        raise NatsError(msg)
    try:
        servers = read_callout(Path(url.callout)).servers
    except (OSError, ValueError) as exc:
        msg = f"cannot read the NATS callout file {url.callout}: {exc}"
        raise NatsError(msg) from exc
    # callout.json lists the NATS addresses in the nodes' order, as the URL lists MQTT's:
    # the node the URL was turned to (``BrokerUrl.beside``) first
    turn = url.rotation % len(servers)
    servers = servers[turn:] + servers[:turn]
    with KvCluster(servers, url.username, url.password.get_secret_value()) as kv:
        users, sessions, codes = open_buckets(kv, prefix)
        yield ClusterStores(
            KvUserStore(users),
            KvSessionStore(
                sessions,
                ttl=session_ttl,
                max_per_game=max_sessions_per_game,
                max_per_address=max_sessions_per_address,
            ),
            KvJoinCodeStore(codes, digits=join_code_digits, rotate_after=join_code_max_failures),
        )
