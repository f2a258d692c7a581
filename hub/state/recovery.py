"""Rebuild a game from its latest snapshot plus the journal after it (pure replay)."""

from __future__ import annotations

from collections.abc import Iterable

from hub.state.errors import JournalCorruptError
from hub.state.journal import JournalEntry
from hub.state.model import GameState
from hub.state.reducer import Rejected, apply

__all__ = ["replay"]


def replay(base: GameState, entries: Iterable[JournalEntry]) -> GameState:
    """Apply journal entries to ``base``; each must be accepted at its recorded version."""
    state = base
    for entry in entries:
        if entry.version != state.version + 1:
            msg = f"{base.game}: journal jumps from version {state.version} to {entry.version}"
            raise JournalCorruptError(msg)
        outcome = apply(state, entry.command, actor=entry.actor, now=entry.at)
        if isinstance(outcome, Rejected):
            msg = (
                f"{base.game}: journal entry {entry.version} ({entry.command.type}) no longer"
                f" applies: {outcome.code}: {outcome.message}"
            )
            raise JournalCorruptError(msg)
        state = outcome.state
    return state
