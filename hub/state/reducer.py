"""The game rules as a pure function: ``apply(state, command, actor=, now=) -> Outcome``.

No clock, no I/O: the same inputs always give the same outcome, so the journal can be
replayed to rebuild any state. A rejection is a value from ErrorCode and changes nothing.
The turn clock is state too (``hub.state.turnclock``); the service only says when
``TurnTimeout`` is due.

A score belongs to the player who earned it, not to the seat: freeing a seat (``kick``,
``leave``) clears its score, so the next player to sit there starts from 0, and the event
says how many points left with the player (``score``). Freeing a seat of a finished game
starts the table over (``not_started``, as ``reset``); the result stays in the history.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from hub.protocol import (
    Command,
    End,
    ErrorCode,
    Event,
    GameStatus,
    Join,
    Kick,
    Leave,
    Pause,
    Rename,
    Reset,
    Resume,
    Start,
    Undo,
)
from hub.protocol.messages import Seat
from hub.state.model import (
    UNDO_DEPTH,
    Actor,
    GameState,
    Role,
    Round,
    SeatHolder,
    StateCommand,
    TurnTimeout,
)
from hub.state.turnclock import restart_clock, run_clock, stop_clock

__all__ = ["Accepted", "Outcome", "Rejected", "apply"]


@dataclass(frozen=True, slots=True)
class Accepted:
    state: GameState
    event: Event


@dataclass(frozen=True, slots=True)
class Rejected:
    code: ErrorCode
    message: str


Outcome = Accepted | Rejected

_SEATED_OR_STAFF = frozenset({Role.PLAYER, Role.OPERATOR, Role.DISPLAY})
_ALLOWED_ROLES: dict[str, frozenset[Role]] = {
    "join": frozenset({Role.PLAYER, Role.OPERATOR}),
    "leave": frozenset({Role.PLAYER, Role.OPERATOR}),
    "rename": frozenset({Role.PLAYER, Role.OPERATOR}),
    "end_turn": frozenset({Role.PLAYER, Role.OPERATOR}),
    "start": _SEATED_OR_STAFF,
    "pause": _SEATED_OR_STAFF,
    "resume": _SEATED_OR_STAFF,
    "reset": frozenset({Role.OPERATOR, Role.DISPLAY}),
    "undo": frozenset({Role.OPERATOR}),
    "kick": frozenset({Role.OPERATOR}),
    "turn_timeout": frozenset({Role.SERVICE}),
}
"""Which roles may send each command at all; seat rules come on top."""


def apply(state: GameState, command: StateCommand, *, actor: Actor, now: datetime) -> Outcome:
    """Apply one command to one game."""
    if actor.role not in _ALLOWED_ROLES[command.type]:
        return Rejected(ErrorCode.FORBIDDEN, f"a {actor.role} may not send {command.type}")
    if command.expected_version is not None and command.expected_version != state.version:
        return Rejected(
            ErrorCode.VERSION_CONFLICT,
            f"expected version {command.expected_version}, the game is at {state.version}",
        )
    if isinstance(command, Undo):
        if not state.undo_stack:
            return Rejected(ErrorCode.NOTHING_TO_UNDO, "there is no earlier state to return to")
        return _accept(
            state,
            command,
            actor=actor,
            now=now,
            table=restart_clock(state.undo_stack[-1], now),
            stack=state.undo_stack[:-1],
        )
    if isinstance(command, TurnTimeout):
        outcome = _turn_timeout(state.table, command, now)
    else:
        outcome = _RULES[type(command)](state.table, command, actor)
    if isinstance(outcome, Rejected):
        return outcome
    stack = (*state.undo_stack, stop_clock(state.table, now))[-UNDO_DEPTH:]
    table = run_clock(state.table, outcome, now)
    return _accept(state, command, actor=actor, now=now, table=table, stack=stack)


def _accept(
    state: GameState,
    command: StateCommand,
    *,
    actor: Actor,
    now: datetime,
    table: Round,
    stack: tuple[Round, ...],
) -> Accepted:
    new = GameState(
        game=state.game,
        version=state.version + 1,
        table=table,
        undo_stack=stack,
        updated_at=now,
    )
    event = Event(
        game=state.game,
        version=new.version,
        type=command.type,
        by=actor.client_id,
        at=now,
        name=getattr(command, "name", None),
        seat=getattr(command, "seat", None),
        points=0 if isinstance(command, TurnTimeout) else getattr(command, "points", None),
        max_rounds=table.max_rounds if isinstance(command, Start) else None,
        turn_seconds=table.turn_seconds if isinstance(command, Start) else None,
        score=_freed_score(state.table, command, actor),
        status=table.status,
    )
    return Accepted(state=new, event=event)


def _freed_score(table: Round, command: StateCommand, actor: Actor) -> int | None:
    """The points the seat a kick or leave frees held (they leave with the player)."""
    seat = (
        command.seat
        if isinstance(command, Kick)
        else table.seat_of(actor.client_id)
        if isinstance(command, Leave)
        else None
    )
    return None if seat is None else table.scores[seat - 1]


def _seat_of(table: Round, actor: Actor) -> Seat | Rejected:
    seat = table.seat_of(actor.client_id)
    if seat is None:
        return Rejected(ErrorCode.NOT_SEATED, f"{actor.client_id} holds no seat in this game")
    return seat


def _with_seat(table: Round, seat: Seat, holder: SeatHolder | None) -> Round:
    seats = (holder, table.seats[1]) if seat == 1 else (table.seats[0], holder)
    return table.model_copy(update={"seats": seats})


def _fresh(table: Round, seats: tuple[SeatHolder | None, SeatHolder | None]) -> Round:
    """A table not started, with these seats (``reset``)."""
    default = table.default_rounds
    return Round(seats=seats, max_rounds=default, default_rounds=default)


def _free(table: Round, seat: Seat) -> Round:
    """Empty a seat and clear its score; a game in progress pauses, a finished one is over."""
    freed = _with_seat(table, seat, None)
    if table.status is GameStatus.FINISHED:
        return _fresh(table, freed.seats)
    scores = (0, table.scores[1]) if seat == 1 else (table.scores[0], 0)
    status = GameStatus.PAUSED if table.status is GameStatus.IN_PROGRESS else table.status
    return freed.model_copy(update={"scores": scores, "status": status})


def _join(table: Round, command: Join, actor: Actor) -> Round | Rejected:
    if table.seat_of(actor.client_id) is not None:
        return Rejected(ErrorCode.ALREADY_SEATED, f"{actor.client_id} already holds a seat")
    if command.seat is not None:
        if table.holder(command.seat) is not None:
            return Rejected(ErrorCode.SEAT_TAKEN, f"seat {command.seat} is taken")
        seat: Seat = command.seat
    elif table.seats[0] is None:
        seat = 1
    elif table.seats[1] is None:
        seat = 2
    else:
        return Rejected(ErrorCode.GAME_FULL, "both seats are taken")
    return _with_seat(table, seat, SeatHolder(client_id=actor.client_id, name=command.name))


def _leave(table: Round, command: Leave, actor: Actor) -> Round | Rejected:
    seat = _seat_of(table, actor)
    if isinstance(seat, Rejected):
        return seat
    if table.status is GameStatus.IN_PROGRESS:
        return Rejected(ErrorCode.WRONG_STATUS, "cannot leave while the game is in progress")
    return _free(table, seat)


def _rename(table: Round, command: Rename, actor: Actor) -> Round | Rejected:
    seat = _seat_of(table, actor)
    if isinstance(seat, Rejected):
        return seat
    return _with_seat(table, seat, SeatHolder(client_id=actor.client_id, name=command.name))


def _staff_or_seated(table: Round, actor: Actor) -> Rejected | None:
    if actor.role is Role.PLAYER and table.seat_of(actor.client_id) is None:
        return Rejected(ErrorCode.NOT_SEATED, "only the seated players or staff may do this")
    return None


def _start(table: Round, command: Start, actor: Actor) -> Round | Rejected:
    if (denied := _staff_or_seated(table, actor)) is not None:
        return denied
    if table.status not in (GameStatus.NOT_STARTED, GameStatus.FINISHED):
        return Rejected(ErrorCode.WRONG_STATUS, f"cannot start a game that is {table.status}")
    if not table.full:
        return Rejected(ErrorCode.NOT_ENOUGH_PLAYERS, "both seats must be taken to start")
    return table.model_copy(
        update={
            "status": GameStatus.IN_PROGRESS,
            "scores": (0, 0),
            "current_round": 1,
            "current_player_id": 1,
            "winner_id": None,
            "max_rounds": command.max_rounds or table.default_rounds,
            "turn_seconds": command.turn_seconds,
        }
    )


def _end_turn(table: Round, command: End, actor: Actor) -> Round | Rejected:
    if table.status is not GameStatus.IN_PROGRESS:
        return Rejected(ErrorCode.WRONG_STATUS, f"no turn to end: the game is {table.status}")
    seat = _seat_of(table, actor)
    if isinstance(seat, Rejected):
        return seat
    if seat != table.current_player_id:
        return Rejected(ErrorCode.NOT_YOUR_TURN, f"it is seat {table.current_player_id}'s turn")
    return _score_turn(table, seat, command.points)


def _turn_timeout(table: Round, command: TurnTimeout, now: datetime) -> Round | Rejected:
    """The hub ends the turn whose clock ran out, with 0 points."""
    if table.status is not GameStatus.IN_PROGRESS or table.turn_deadline is None:
        return Rejected(ErrorCode.WRONG_STATUS, "no turn clock is running")
    if command.seat != table.current_player_id:
        return Rejected(ErrorCode.NOT_YOUR_TURN, f"it is seat {table.current_player_id}'s turn")
    if now < table.turn_deadline:
        return Rejected(ErrorCode.WRONG_STATUS, "the turn clock has not run out yet")
    return _score_turn(table, command.seat, 0)


def _score_turn(table: Round, seat: Seat, points: int) -> Round:
    scores = list(table.scores)
    scores[seat - 1] += points
    update: dict[str, object] = {"scores": (scores[0], scores[1])}
    if seat == 1:
        update["current_player_id"] = 2
    elif table.current_round < table.max_rounds:
        update |= {"current_player_id": 1, "current_round": table.current_round + 1}
    else:
        winner = 1 if scores[0] > scores[1] else 2 if scores[1] > scores[0] else None
        update |= {"current_player_id": 1, "status": GameStatus.FINISHED, "winner_id": winner}
    return table.model_copy(update=update)


def _pause(table: Round, command: Pause, actor: Actor) -> Round | Rejected:
    if (denied := _staff_or_seated(table, actor)) is not None:
        return denied
    if table.status is not GameStatus.IN_PROGRESS:
        return Rejected(ErrorCode.WRONG_STATUS, f"cannot pause a game that is {table.status}")
    return table.model_copy(update={"status": GameStatus.PAUSED})


def _resume(table: Round, command: Resume, actor: Actor) -> Round | Rejected:
    if (denied := _staff_or_seated(table, actor)) is not None:
        return denied
    if table.status is not GameStatus.PAUSED:
        return Rejected(ErrorCode.WRONG_STATUS, f"cannot resume a game that is {table.status}")
    if not table.full:
        return Rejected(ErrorCode.NOT_ENOUGH_PLAYERS, "both seats must be taken to resume")
    return table.model_copy(update={"status": GameStatus.IN_PROGRESS})


def _reset(table: Round, command: Reset, actor: Actor) -> Round | Rejected:
    return _fresh(table, table.seats)


def _kick(table: Round, command: Kick, actor: Actor) -> Round | Rejected:
    if table.holder(command.seat) is None:
        return Rejected(ErrorCode.NOT_SEATED, f"seat {command.seat} is empty")
    return _free(table, command.seat)


_Rule = Callable[[Round, Command, Actor], Round | Rejected]
_RULES: dict[type, _Rule] = {
    Join: _join,  # type: ignore[dict-item]
    Leave: _leave,  # type: ignore[dict-item]
    Rename: _rename,  # type: ignore[dict-item]
    Start: _start,  # type: ignore[dict-item]
    End: _end_turn,  # type: ignore[dict-item]
    Pause: _pause,  # type: ignore[dict-item]
    Resume: _resume,  # type: ignore[dict-item]
    Reset: _reset,  # type: ignore[dict-item]
    Kick: _kick,  # type: ignore[dict-item]
}
