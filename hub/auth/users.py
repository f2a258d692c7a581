"""The user store: ``DATA_DIR/users.json`` (mode 0600), passwords hashed.

Written atomically by ``hub users ...``; a running hub notices changes on the next login
(it compares the file's mtime), so users can be added without a restart.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import asdict, dataclass
from functools import cache
from pathlib import Path
from typing import Protocol

from hub.auth.errors import AuthError, UserExistsError, UserNotFoundError
from hub.auth.passwords import hash_password, mosquitto_hash, verify_password
from hub.auth.roles import Role
from hub.clock import utc_now
from hub.files import write_atomic
from hub.protocol import valid_client_id

__all__ = ["SERVICE_USER", "User", "UserLookup", "UserStore", "Users", "new_user"]

SERVICE_USER = "service"
"""The state service's own identity. No login from outside may use it."""
MIN_PASSWORD_CHARS = 8


@dataclass(frozen=True, slots=True)
class User:
    name: str
    role: Role
    password_hash: str
    mosquitto_hash: str
    created_at: str


@cache
def _dummy_hash() -> str:
    """A hash of a random password, checked for unknown names so that they cost as much as
    known ones (no user enumeration by timing)."""
    return hash_password(secrets.token_urlsafe(16))


class Users(Protocol):
    """What the hub, the bridge and the brokers' login checks need of a user store: the
    file (``UserStore``) or a NATS cluster's key-value bucket (``hub.nats.stores``)."""

    def list(self) -> list[User]: ...

    def get(self, name: str) -> User | None: ...

    def has_role(self, role: Role) -> bool: ...

    def login(self, name: str) -> User | None:
        """The user who may log in as ``name`` (never the service identity)."""

    def authenticate(self, name: str, password: str) -> User | None:
        """The user if ``password`` is theirs (blocking: argon2)."""

    def add(self, name: str, role: Role, password: str) -> User: ...

    def remove(self, name: str) -> None: ...


def new_user(name: str, role: Role, password: str) -> User:
    """A new user (its password hashed), or AuthError saying what is wrong with it."""
    if not valid_client_id(name):
        msg = f"invalid user name {name!r}: use letters, digits, '_', '.' and '-' (max 64)"
        raise AuthError(msg)
    if name == SERVICE_USER or role is Role.SERVICE:
        msg = "the service identity is internal to the hub and cannot be added"
        raise AuthError(msg)
    if len(password) < MIN_PASSWORD_CHARS:
        msg = f"the password must have at least {MIN_PASSWORD_CHARS} characters"
        raise AuthError(msg)
    return User(
        name=name,
        role=role,
        password_hash=hash_password(password),
        mosquitto_hash=mosquitto_hash(password),
        created_at=utc_now().isoformat(),
    )


class UserLookup:
    """Reading and password checks over ``self._users`` (kept current by ``refresh``),
    shared by the stores. Successful checks are cached per password hash."""

    def __init__(self) -> None:
        self._users: dict[str, User] = {}
        self._verified: dict[str, tuple[str, bytes]] = {}
        """name -> (its password hash, sha256(password)) of the last success."""

    def refresh(self) -> None:
        """Bring ``self._users`` up to date."""

    def list(self) -> list[User]:
        self.refresh()
        return sorted(self._users.values(), key=lambda u: u.name)

    def get(self, name: str) -> User | None:
        self.refresh()
        return self._users.get(name)

    def has_role(self, role: Role) -> bool:
        return any(user.role is role for user in self.list())

    def login(self, name: str) -> User | None:
        """The user who may log in as ``name`` (never the service identity)."""
        user = self.get(name)
        return None if user is None or user.role is Role.SERVICE else user

    def check_password(self, user: User, password: str) -> bool:
        """Verify with argon2 (slow: call it off the event loop); successes are cached."""
        fingerprint = hashlib.sha256(password.encode()).digest()
        if self._verified.get(user.name) == (user.password_hash, fingerprint):
            return True
        if not verify_password(user.password_hash, password):
            return False
        self._verified[user.name] = (user.password_hash, fingerprint)
        return True

    def authenticate(self, name: str, password: str) -> User | None:
        """The user if ``password`` is theirs (blocking). An unknown name (or the service
        identity) costs one argon2 check too, so both take as long."""
        user = self.login(name)
        if user is None:
            verify_password(_dummy_hash(), password)
            return None
        return user if self.check_password(user, password) else None


class UserStore(UserLookup):
    """Users by name in ``DATA_DIR/users.json``. Not thread-safe; the hub uses it from its
    event loop only."""

    FILENAME = "users.json"

    def __init__(self, data_dir: Path) -> None:
        super().__init__()
        self.path = data_dir / self.FILENAME
        self._mtime: int | None = None

    # --- reading ----------------------------------------------------------------------
    def refresh(self) -> None:
        """Re-read the file if it changed since the last read."""
        try:
            mtime = self.path.stat().st_mtime_ns
        except FileNotFoundError:
            self._users, self._mtime = {}, None
            return
        if mtime == self._mtime:
            return
        try:
            raw = json.loads(self.path.read_text())
            users = {
                name: User(name=name, **{**fields, "role": Role(fields["role"])})
                for name, fields in raw["users"].items()
            }
        except (OSError, ValueError, KeyError, TypeError) as exc:
            msg = f"cannot read the user store {self.path}: {exc}"
            raise AuthError(msg) from exc
        self._users, self._mtime = users, mtime

    # --- writing ----------------------------------------------------------------------
    def add(self, name: str, role: Role, password: str) -> User:
        user = new_user(name, role, password)
        self.refresh()
        if name in self._users:
            msg = f"user {name!r} already exists"
            raise UserExistsError(msg)
        self._write({**self._users, name: user})
        return user

    def remove(self, name: str) -> None:
        self.refresh()
        if name not in self._users:
            msg = f"no user {name!r}"
            raise UserNotFoundError(msg)
        self._write({k: v for k, v in self._users.items() if k != name})

    def _write(self, users: dict[str, User]) -> None:
        body = {
            "users": {
                name: {k: v for k, v in asdict(user).items() if k != "name"}
                for name, user in users.items()
            }
        }
        write_atomic(self.path, json.dumps(body, indent=2))
        self._mtime = None
        self.refresh()
