"""The turn clock's rules (pure): how each accepted command moves a table's clock.

A table's clock is either running (``turn_deadline`` set), stopped with time left
(``turn_remaining_ms`` set: paused, or a table kept for ``undo``), or off (both None).

- A new turn (``start``, a turn passing to the other seat) gets the full ``turn_seconds``.
- Pausing (``pause``, ``kick`` during a turn) stops the clock and keeps what is left;
  ``resume`` runs it again from there.
- ``undo`` restores a table with its clock as it stood when the undone command came
  (the turn's remaining time); a turn that had run out gets the full time again.
- ``reset`` and the end of a game stop it for good.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from hub.protocol import GameStatus
from hub.state.model import Round

__all__ = ["remaining_ms", "restart_clock", "run_clock", "stop_clock"]

_MS = timedelta(milliseconds=1)


def remaining_ms(table: Round, now: datetime) -> int | None:
    """Milliseconds left of the turn at ``now`` (0 once it ran out), None without a clock."""
    if table.turn_deadline is not None:
        return max(0, (table.turn_deadline - now) // _MS)
    return table.turn_remaining_ms


def stop_clock(table: Round, now: datetime) -> Round:
    """``table`` with its running clock stopped at ``now`` (what is left kept)."""
    if table.turn_deadline is None:
        return table
    return table.model_copy(
        update={"turn_deadline": None, "turn_remaining_ms": remaining_ms(table, now)}
    )


def _run_from(table: Round, now: datetime, left_ms: int) -> Round:
    deadline = now + timedelta(milliseconds=left_ms)
    return table.model_copy(update={"turn_deadline": deadline, "turn_remaining_ms": None})


def _off(table: Round) -> Round:
    return table.model_copy(update={"turn_deadline": None, "turn_remaining_ms": None})


def run_clock(before: Round, after: Round, now: datetime) -> Round:
    """The clock of ``after``, the table a command made out of ``before`` at ``now``."""
    if after.turn_seconds is None or after.status in (
        GameStatus.NOT_STARTED,
        GameStatus.FINISHED,
    ):
        return _off(after)
    if after.status is GameStatus.PAUSED:
        return stop_clock(after, now)
    full_ms = after.turn_seconds * 1000
    new_turn = before.status in (GameStatus.NOT_STARTED, GameStatus.FINISHED) or (
        before.current_round,
        before.current_player_id,
    ) != (after.current_round, after.current_player_id)
    if new_turn:
        return _run_from(after, now, full_ms)
    if after.turn_deadline is None:  # resumed
        return _run_from(after, now, after.turn_remaining_ms or 0)
    return after


def restart_clock(table: Round, now: datetime) -> Round:
    """A table back from the undo stack: its turn runs again with the time it had left."""
    if table.status is not GameStatus.IN_PROGRESS or table.turn_seconds is None:
        return table
    left = table.turn_remaining_ms or table.turn_seconds * 1000
    return _run_from(table, now, left)
