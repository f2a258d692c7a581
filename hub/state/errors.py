"""Errors of the state package.

StateError
├── StorageUnavailableError   the journal cannot be written now (disk full, read-only)
│   └── FencedError           another writer extended a replicated journal: this one is stale
└── JournalCorruptError       the journal on disk does not replay to a valid state
"""

from __future__ import annotations

__all__ = ["FencedError", "JournalCorruptError", "StateError", "StorageUnavailableError"]


class StateError(Exception):
    """Base of the state package's errors."""


class StorageUnavailableError(StateError):
    """The journal could not be written; nothing was acknowledged."""


class FencedError(StorageUnavailableError):
    """A replicated journal was extended by another writer since this one last wrote (its
    expected last sequence failed): nothing was stored, and this writer must stop serving."""


class JournalCorruptError(StateError):
    """The journal on disk is not a valid history of a game."""
