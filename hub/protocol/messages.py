"""Pydantic models of every payload in the contract.

All models are frozen and forbid unknown fields: bytes are parsed once, at the edge,
into these, and nothing downstream sees raw JSON. Commands are validated strictly
(no "5" for 5, no true for 1).
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    model_validator,
)

from hub.protocol.errors import ErrorCode

__all__ = [
    "COMMAND_TYPES",
    "Command",
    "End",
    "ErrorBody",
    "Event",
    "GameStatus",
    "Join",
    "JoinCode",
    "Kick",
    "Leave",
    "Name",
    "Pause",
    "PlayerView",
    "Presence",
    "Rename",
    "Reply",
    "Reset",
    "Resume",
    "Seat",
    "Snapshot",
    "Start",
    "Stats",
    "Status",
    "Undo",
    "WireModel",
]

MAX_NAME_CHARS = 24
MAX_REQUEST_ID_CHARS = 64


class WireModel(BaseModel):
    """Base of every payload: immutable, unknown fields rejected."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    def to_wire(self) -> dict[str, Any]:
        """The JSON-ready dict published on the wire."""
        return self.model_dump(mode="json")


def _clean_name(value: str) -> str:
    name = value.strip()
    if not 1 <= len(name) <= MAX_NAME_CHARS:
        msg = f"name must be 1-{MAX_NAME_CHARS} characters after trimming"
        raise ValueError(msg)
    if not name.isprintable():
        msg = "name must contain only printable characters"
        raise ValueError(msg)
    return name


def _strict_seat(value: object) -> object:
    # Literal[1, 2] alone lets true and 1.0 through, even in strict mode.
    if isinstance(value, bool) or not isinstance(value, int):
        msg = "seat must be the integer 1 or 2"
        raise ValueError(msg)  # noqa: TRY004 - pydantic reports only ValueError as invalid
    return value


def _utc_millis(value: datetime) -> str:
    utc = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return utc.isoformat(timespec="milliseconds").replace("+00:00", "Z")


Name = Annotated[str, AfterValidator(_clean_name)]
Seat = Literal[1, 2]
CommandSeat = Annotated[Seat, BeforeValidator(_strict_seat)]
Timestamp = Annotated[datetime, PlainSerializer(_utc_millis, return_type=str, when_used="json")]
"""A time on the wire: ISO 8601 UTC with milliseconds (``2026-11-24T08:07:48.506Z``)."""


class GameStatus(StrEnum):
    NOT_STARTED = "not_started"
    IN_PROGRESS = "in_progress"
    PAUSED = "paused"
    FINISHED = "finished"


# --- commands: R/games/{game}/cmd/{client_id} ---------------------------------------------


class _CommandBase(WireModel):
    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    request_id: Annotated[str, Field(max_length=MAX_REQUEST_ID_CHARS)] | None = None
    expected_version: Annotated[int, Field(ge=0)] | None = None


class Join(_CommandBase):
    """Take a free seat (the given one, or the first free)."""

    type: Literal["join"]
    name: Name
    seat: CommandSeat | None = None


class Leave(_CommandBase):
    """Give up one's seat (not while the game is in progress)."""

    type: Literal["leave"]


class Rename(_CommandBase):
    type: Literal["rename"]
    name: Name


class Start(_CommandBase):
    """Start (or restart) the game: round 1, seat 1 to move, scores 0."""

    type: Literal["start"]
    max_rounds: Annotated[int, Field(ge=1, le=99)] | None = None
    turn_seconds: Annotated[int, Field(ge=5, le=3600)] | None = None
    """Seconds per turn (the turn clock); absent: the hub's default (off unless configured)."""


class End(_CommandBase):
    """End the current turn, scoring ``points``."""

    type: Literal["end_turn"]
    points: Annotated[int, Field(ge=0, le=1000)] = 0


class Pause(_CommandBase):
    type: Literal["pause"]


class Resume(_CommandBase):
    type: Literal["resume"]


class Reset(_CommandBase):
    """Back to not_started, seats kept, scores 0 (operator or display)."""

    type: Literal["reset"]


class Undo(_CommandBase):
    """Restore the state before the last accepted command, as a new version (operator)."""

    type: Literal["undo"]


class Kick(_CommandBase):
    """Free a seat (operator)."""

    type: Literal["kick"]
    seat: CommandSeat


Command = Annotated[
    Join | Leave | Rename | Start | End | Pause | Resume | Reset | Undo | Kick,
    Field(discriminator="type"),
]
COMMAND_TYPES: frozenset[str] = frozenset(
    {"join", "leave", "rename", "start", "end_turn", "pause", "resume", "reset", "undo", "kick"}
)


# --- state: R/games/{game}/state (retained) ---------------------------------------------


class PlayerView(WireModel):
    """One seat. An empty seat has ``name`` and ``client_id`` null."""

    id: Seat
    name: str | None
    client_id: str | None
    connected: bool
    score: Annotated[int, Field(ge=0)]


class Snapshot(WireModel):
    """The full, retained state of one game."""

    schema_: Literal[1] = Field(default=1, alias="schema")
    game: str
    version: Annotated[int, Field(ge=0)]
    epoch: Annotated[int, Field(ge=0)]
    status: GameStatus
    p1_name: str | None
    p2_name: str | None
    current_round: Annotated[int, Field(ge=0)]
    max_rounds: Annotated[int, Field(ge=1)]
    current_player_id: Seat
    players: tuple[PlayerView, PlayerView]
    winner_id: Seat | None
    updated_at: Timestamp
    turn_seconds: Annotated[int, Field(ge=1)] | None = None
    """The turn clock's length, or null when the game runs without one."""
    turn_deadline: Timestamp | None = None
    """When the turn to move ends on its own (0 points), or null (no clock, paused, over)."""
    turn_remaining_ms: Annotated[int, Field(ge=0)] | None = None
    """While the game is paused with the clock on: what is left of the turn (resume restarts
    it from there); null otherwise."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    def to_wire(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True)


# --- events: R/games/{game}/events ------------------------------------------------------


class Event(WireModel):
    """One accepted command, as it happened. Absent arguments are left out on the wire."""

    game: str
    version: int
    type: str
    by: str
    at: Timestamp
    name: str | None = None
    seat: Seat | None = None
    points: int | None = None
    max_rounds: int | None = None
    turn_seconds: int | None = None
    """``start`` only: the turn clock the game runs with (absent: none)."""
    score: int | None = None
    """``kick`` and ``leave``: the points the freed seat held, cleared with it (a score
    goes with its player, never to the next one in the seat)."""
    status: GameStatus | None = None
    """The game's status after the command."""

    def to_wire(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_none=True)


# --- replies: R/clients/{client_id}/reply -------------------------------------------------


class ErrorBody(WireModel):
    code: ErrorCode
    message: str


class Reply(WireModel):
    """``{"request_id", "ok": true, "version"}`` or ``{"request_id", "ok": false, "error"}``."""

    request_id: str | None = None
    ok: bool
    version: int | None = None
    error: ErrorBody | None = None

    @model_validator(mode="after")
    def _ok_xor_error(self) -> Reply:
        if self.ok != (self.error is None) or self.ok != (self.version is not None):
            msg = "a reply has either ok=true and a version, or ok=false and an error"
            raise ValueError(msg)
        return self

    def to_wire(self) -> dict[str, Any]:
        return {"request_id": self.request_id, **self.model_dump(mode="json", exclude_none=True)}

    @classmethod
    def accepted(cls, request_id: str | None, version: int) -> Reply:
        return cls(request_id=request_id, ok=True, version=version)

    @classmethod
    def rejected(cls, request_id: str | None, code: ErrorCode, message: str) -> Reply:
        return cls(request_id=request_id, ok=False, error=ErrorBody(code=code, message=message))


# --- status, presence, stats ----------------------------------------------------------------


class Status(WireModel):
    """``R/status`` (retained): is the state service up, and which start of it."""

    state: Literal["online", "offline"]
    epoch: int
    version: str
    started_at: Timestamp
    instance: str | None = None
    """Which service instance is (or was) the active one (``hub serve --instance``)."""

    def to_wire(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_none=True)


class Presence(WireModel):
    """``R/clients/{client_id}/presence`` (retained, last will ``offline``)."""

    state: Literal["online", "offline"]


class JoinCode(WireModel):
    """``R/games/{game}/join`` (retained; displays and operators only): the digits a phone
    enters to get a player session."""

    game: str
    code: Annotated[str, Field(pattern=r"^[0-9]{4,6}$")]
    url: str | None = None
    """The link a phone opens to join with this code (from the hub's ``public_url``)."""


class GameCounters(WireModel):
    accepted: int
    rejected: int


class Stats(WireModel):
    """``R/stats`` (retained, every 10 s)."""

    clients_connected: int
    """Clients whose presence is online."""
    commands_accepted: int
    commands_rejected: int
    games: dict[str, GameCounters]
    uptime_s: float
    epoch: int
    at: Timestamp
