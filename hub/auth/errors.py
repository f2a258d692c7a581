"""Errors of the auth package.

AuthError
├── UserExistsError        adding a user whose name is taken
├── UserNotFoundError      removing or reading a user that does not exist
├── TooManyAttemptsError   a login refused unchecked: its address has too many (gate.py)
├── VerifierBusyError      a login refused unchecked: too many password checks (verifier.py)
├── SessionLimitError      a new player session would pass a cap (per game, per address)
└── SeatError              the broker cannot let a player session in (why, in words)
"""

from __future__ import annotations

__all__ = [
    "AuthError",
    "SeatError",
    "SessionLimitError",
    "UserExistsError",
    "UserNotFoundError",
]


class AuthError(Exception):
    """Base of the auth package's errors (bad names, bad passwords, unreadable store)."""


class UserExistsError(AuthError):
    pass


class UserNotFoundError(AuthError):
    pass


class SessionLimitError(AuthError):
    """Too many live sessions already; the message says which cap."""


class SeatError(AuthError):
    """A player session cannot be given a seat on this broker; the message says why."""
