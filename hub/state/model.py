"""The internal game state. Frozen; the reducer returns new values."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict

from hub.auth.roles import Role
from hub.protocol import Command, GameStatus
from hub.protocol.messages import Seat

__all__ = [
    "HUB_ACTOR",
    "UNDO_DEPTH",
    "Actor",
    "GameState",
    "Role",
    "Round",
    "SeatHolder",
    "StateCommand",
    "TurnTimeout",
]

UNDO_DEPTH = 32
"""How many earlier states ``undo`` can step back through."""


@dataclass(frozen=True, slots=True)
class Actor:
    """Who sent a command: the authenticated client id and its role."""

    client_id: str
    role: Role


HUB_ACTOR = Actor(client_id="hub", role=Role.SERVICE)
"""Who ends a turn whose clock ran out (``"by": "hub"`` in the event)."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class TurnTimeout(_Frozen):
    """The hub's own command: the turn clock of ``seat`` ran out at ``expected_version``.

    Never on the wire (clients cannot send it); journaled like a command, so a replay
    ends the same turn at the same time.
    """

    type: Literal["turn_timeout"] = "turn_timeout"
    expected_version: int
    seat: Seat
    request_id: None = None


StateCommand = Command | TurnTimeout
"""What the reducer applies and the journal records: a client's command or the hub's own."""


class SeatHolder(_Frozen):
    client_id: str
    name: str


class Round(_Frozen):
    """Everything ``undo`` restores: the table as it stood after one accepted command."""

    status: GameStatus = GameStatus.NOT_STARTED
    seats: tuple[SeatHolder | None, SeatHolder | None] = (None, None)
    scores: tuple[int, int] = (0, 0)
    current_round: int = 0
    max_rounds: int
    default_rounds: int = 5
    """Rounds for a ``start`` that does not say (from the config when the game was made)."""
    current_player_id: Seat = 1
    winner_id: Seat | None = None
    turn_seconds: int | None = None
    """The turn clock of the game being played, or None (no clock)."""
    turn_deadline: datetime | None = None
    """When the running clock ends the turn to move; None when no clock runs."""
    turn_remaining_ms: int | None = None
    """What is left of the turn while its clock is stopped (paused, or a table kept for
    ``undo``); None when the clock runs or there is none."""

    def seat_of(self, client_id: str) -> Seat | None:
        for seat, holder in ((1, self.seats[0]), (2, self.seats[1])):
            if holder is not None and holder.client_id == client_id:
                return seat  # type: ignore[return-value]
        return None

    def holder(self, seat: Seat) -> SeatHolder | None:
        return self.seats[seat - 1]

    @property
    def full(self) -> bool:
        return self.seats[0] is not None and self.seats[1] is not None


class GameState(_Frozen):
    """One game: its table, its version, and the earlier tables ``undo`` can return to."""

    game: str
    version: int = 0
    table: Round
    undo_stack: tuple[Round, ...] = ()
    updated_at: datetime

    @classmethod
    def new(cls, game: str, *, max_rounds: int, now: datetime) -> GameState:
        table = Round(max_rounds=max_rounds, default_rounds=max_rounds)
        return cls(game=game, table=table, updated_at=now)
