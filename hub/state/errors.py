"""Errors of the state package.

StateError
├── StorageUnavailableError   the journal cannot be written now (disk full, read-only)
└── JournalCorruptError       the journal on disk does not replay to a valid state
"""

from __future__ import annotations

__all__ = ["JournalCorruptError", "StateError", "StorageUnavailableError"]


class StateError(Exception):
    """Base of the state package's errors."""


class StorageUnavailableError(StateError):
    """The journal could not be written; nothing was acknowledged."""


class JournalCorruptError(StateError):
    """The journal on disk is not a valid history of a game."""
