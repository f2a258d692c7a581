"""Password hashing: argon2id for the hub, PBKDF2-SHA512 in Mosquitto's ``$7$`` format
for ``hub mosquitto-config`` (Mosquitto 2 cannot read argon2)."""

from __future__ import annotations

import base64
import hashlib
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

__all__ = ["hash_password", "mosquitto_hash", "new_password", "verify_password"]

_HASHER = PasswordHasher()  # argon2id, RFC 9106 low-memory profile
MOSQUITTO_ITERATIONS = 20_000
"""Mosquitto's own default is 101; this costs Mosquitto ~10 ms per login, which keeps
hundreds of reconnecting phones affordable. The hub's own store uses argon2id."""


def new_password() -> str:
    """A random password of 128 bits, URL-safe."""
    return secrets.token_urlsafe(16)


def hash_password(password: str) -> str:
    return _HASHER.hash(password)


def verify_password(stored: str, password: str) -> bool:
    try:
        return _HASHER.verify(stored, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def mosquitto_hash(password: str, *, iterations: int = MOSQUITTO_ITERATIONS) -> str:
    """``$7$iterations$salt$hash`` as mosquitto_passwd writes it."""
    salt = secrets.token_bytes(12)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations)
    return f"$7${iterations}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"
