"""Errors of the auth package.

AuthError
├── UserExistsError      adding a user whose name is taken
└── UserNotFoundError    removing or reading a user that does not exist
"""

from __future__ import annotations

__all__ = ["AuthError", "UserExistsError", "UserNotFoundError"]


class AuthError(Exception):
    """Base of the auth package's errors (bad names, bad passwords, unreadable store)."""


class UserExistsError(AuthError):
    pass


class UserNotFoundError(AuthError):
    pass
