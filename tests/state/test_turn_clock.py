"""The turn clock in the reducer: deadlines, pause/resume, undo, and the hub's timeout."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

import pytest

from hub.protocol import DecodeError, ErrorCode, Snapshot, decode_command, decode_model, encode
from hub.state.model import HUB_ACTOR, GameState, Role, TurnTimeout
from hub.state.reducer import Accepted, Rejected, apply
from hub.state.view import snapshot
from tests.state.test_reducer import (
    DISPLAY,
    FI,
    IP,
    LATER,
    NS,
    OP,
    P1,
    P2,
    PA,
    end,
    join,
    kick,
    ok,
    pause,
    reset,
    resume,
    seated,
    start,
    undo,
)

SECONDS = 30


def at(seconds: float) -> datetime:
    return LATER + timedelta(seconds=seconds)


def clocked(max_rounds: int = 3, seconds: int = SECONDS) -> GameState:
    """Seat 1 to move, its clock started at LATER."""
    return ok(seated(max_rounds), start(max_rounds, turn_seconds=seconds), P1, now=LATER)


def timeout(state: GameState, now: datetime, **fields: int) -> Accepted | Rejected:
    command = TurnTimeout.model_validate(
        {"expected_version": state.version, "seat": state.table.current_player_id, **fields}
    )
    return apply(state, command, actor=HUB_ACTOR, now=now)


def timed_out(state: GameState, now: datetime) -> GameState:
    outcome = timeout(state, now)
    assert isinstance(outcome, Accepted), outcome
    return outcome.state


# --- start --------------------------------------------------------------------------------


def test_no_clock_by_default() -> None:
    table = ok(seated(), start(), P1).table
    assert (table.turn_seconds, table.turn_deadline, table.turn_remaining_ms) == (None, None, None)


def test_start_with_a_clock_sets_the_first_deadline() -> None:
    outcome = apply(seated(), start(turn_seconds=SECONDS), actor=P1, now=LATER)
    assert isinstance(outcome, Accepted)
    table = outcome.state.table
    assert table.turn_seconds == SECONDS
    assert table.turn_deadline == at(SECONDS)
    assert table.turn_remaining_ms is None
    assert outcome.event.turn_seconds == SECONDS


def test_the_snapshot_carries_the_clock() -> None:
    state = clocked()
    view = snapshot(state, epoch=1, online={})
    assert (view.turn_seconds, view.turn_deadline, view.turn_remaining_ms) == (
        SECONDS,
        at(SECONDS),
        None,
    )
    wire = encode(view)
    assert b'"turn_deadline":"2026-11-24T08:00:35.000Z"' in wire
    assert decode_model(wire, Snapshot) == view
    paused_view = snapshot(ok(state, pause(), P1, now=at(10)), epoch=1, online={})
    assert (paused_view.turn_deadline, paused_view.turn_remaining_ms) == (None, 20_000)


# --- turns ------------------------------------------------------------------------------


@pytest.mark.parametrize(("seat", "actor"), [(1, P1), (2, P2)])
def test_each_new_turn_gets_the_full_time(seat: int, actor: object) -> None:
    state = clocked()
    if seat == 2:
        state = ok(state, end(1), P1, now=at(4))
    state = ok(state, end(2), actor, now=at(12))  # type: ignore[arg-type]
    assert state.table.turn_deadline == at(12 + SECONDS)


def test_commands_that_keep_the_turn_keep_the_deadline() -> None:
    state = clocked()
    renamed = apply(state, join("X"), actor=P1, now=at(3))  # refused: already seated
    assert isinstance(renamed, Rejected)
    state = ok(state, kick(2), OP, now=at(5))  # pauses with 25 s left
    state = ok(state, join("Cy"), P2, now=at(7))
    assert (state.table.status, state.table.turn_remaining_ms) == (PA, 25_000)


def test_the_last_turn_stops_the_clock() -> None:
    state = ok(clocked(max_rounds=1), end(1), P1, now=at(1))
    state = ok(state, end(2), P2, now=at(2))
    table = state.table
    assert table.status is FI
    assert (table.turn_seconds, table.turn_deadline, table.turn_remaining_ms) == (
        SECONDS,
        None,
        None,
    )


def test_reset_turns_the_clock_off() -> None:
    table = ok(clocked(), reset(), DISPLAY, now=at(1)).table
    assert table.status is NS
    assert (table.turn_seconds, table.turn_deadline, table.turn_remaining_ms) == (None, None, None)


def test_a_restart_takes_its_own_clock() -> None:
    state = ok(clocked(max_rounds=1), end(1), P1, now=at(1))
    state = ok(state, end(2), P2, now=at(2))
    table = ok(state, start(1), P1, now=at(3)).table
    assert (table.turn_seconds, table.turn_deadline) == (None, None)
    table = ok(state, start(1, turn_seconds=5), P1, now=at(3)).table
    assert (table.turn_seconds, table.turn_deadline) == (5, at(8))


# --- pause / resume -------------------------------------------------------------------------


def test_pause_keeps_the_remaining_time_and_resume_runs_it() -> None:
    state = ok(clocked(), pause(), P2, now=at(12.5))
    assert (state.table.turn_deadline, state.table.turn_remaining_ms) == (None, 17_500)
    state = ok(state, resume(), P1, now=at(600))  # a long break costs nothing
    assert (state.table.turn_deadline, state.table.turn_remaining_ms) == (at(617.5), None)


def test_a_kick_stops_the_clock_and_resume_after_a_join_runs_it() -> None:
    state = ok(clocked(), kick(1), OP, now=at(20))
    assert (state.table.status, state.table.turn_remaining_ms) == (PA, 10_000)
    state = ok(state, join("Al"), P1, now=at(40))
    state = ok(state, resume(), OP, now=at(50))
    assert state.table.turn_deadline == at(60)


def test_paused_past_the_deadline_is_not_a_timeout() -> None:
    state = ok(clocked(), pause(), P1, now=at(29))
    outcome = timeout(state, at(100))
    assert isinstance(outcome, Rejected)
    assert outcome.code is ErrorCode.WRONG_STATUS


# --- the hub's timeout ----------------------------------------------------------------------


def test_timeout_ends_the_turn_with_zero_points() -> None:
    state = ok(clocked(), end(4), P1, now=at(1))
    outcome = timeout(state, at(1 + SECONDS))
    assert isinstance(outcome, Accepted)
    after, event = outcome.state, outcome.event
    assert after.version == state.version + 1
    assert after.table.scores == (4, 0)
    assert (after.table.current_round, after.table.current_player_id) == (2, 1)
    assert after.table.turn_deadline == at(1 + 2 * SECONDS)
    wire = event.to_wire()
    assert wire == {
        "game": "main",
        "version": after.version,
        "type": "turn_timeout",
        "by": "hub",
        "at": "2026-11-24T08:00:36.000Z",
        "seat": 2,
        "points": 0,
        "status": "in_progress",
    }


def test_timeout_of_the_last_turn_finishes_the_game() -> None:
    state = ok(clocked(max_rounds=1), end(3), P1, now=at(1))
    after = timed_out(state, at(40))
    assert (after.table.status, after.table.winner_id, after.table.scores) == (FI, 1, (3, 0))


@pytest.mark.parametrize(
    ("fields", "now", "code"),
    [
        ({}, at(SECONDS - 0.001), ErrorCode.WRONG_STATUS),  # not yet
        ({"expected_version": 2}, at(SECONDS), ErrorCode.VERSION_CONFLICT),  # a stale timer
        ({"seat": 2}, at(SECONDS), ErrorCode.NOT_YOUR_TURN),
    ],
)
def test_timeout_rejections(fields: dict[str, int], now: datetime, code: ErrorCode) -> None:
    state = clocked()
    outcome = timeout(state, now, **fields)
    assert isinstance(outcome, Rejected)
    assert outcome.code is code


@pytest.mark.parametrize("where", ["no clock", "not started", "finished"])
def test_no_timeout_without_a_running_clock(where: str) -> None:
    builders: dict[str, Callable[[], GameState]] = {
        "no clock": lambda: ok(seated(), start(), P1),
        "not started": seated,
        "finished": lambda: timed_out(ok(clocked(1), end(1), P1, now=at(1)), at(99)),
    }
    state = builders[where]()
    outcome = timeout(state, at(10_000))
    assert isinstance(outcome, Rejected)
    assert outcome.code is ErrorCode.WRONG_STATUS


@pytest.mark.parametrize("role", [r for r in Role if r is not Role.SERVICE])
def test_only_the_hub_times_a_turn_out(role: Role) -> None:
    state = clocked()
    command = TurnTimeout(expected_version=state.version, seat=1)
    outcome = apply(state, command, actor=HUB_ACTOR.__class__("p1", role), now=at(99))
    assert isinstance(outcome, Rejected)
    assert outcome.code is ErrorCode.FORBIDDEN


def test_the_right_move_just_after_the_deadline_wins_over_a_late_timer() -> None:
    """Commands and timeouts apply in arrival order: the timer for the old version is stale."""
    state = clocked()
    moved = ok(state, end(5), P1, now=at(SECONDS + 0.01))
    stale = apply(
        moved, TurnTimeout(expected_version=state.version, seat=1), actor=HUB_ACTOR, now=at(31)
    )
    assert isinstance(stale, Rejected)
    assert stale.code is ErrorCode.VERSION_CONFLICT


# --- undo -------------------------------------------------------------------------------------


def test_undo_restores_the_time_the_turn_had_left() -> None:
    state = ok(clocked(), end(9), P1, now=at(21))  # seat 1 had 9 s left
    state = ok(state, undo(), OP, now=at(50))
    table = state.table
    assert (table.current_player_id, table.scores) == (1, (0, 0))
    assert (table.turn_deadline, table.turn_remaining_ms) == (at(59), None)


def test_undo_of_a_timeout_gives_the_turn_its_full_time() -> None:
    state = timed_out(clocked(), at(SECONDS))
    state = ok(state, undo(), OP, now=at(45))
    assert (state.table.current_player_id, state.table.turn_deadline) == (1, at(45 + SECONDS))


def test_undo_of_a_pause_runs_the_clock_from_where_it_stopped() -> None:
    state = ok(clocked(), pause(), P1, now=at(10))
    state = ok(state, undo(), OP, now=at(100))
    assert (state.table.status, state.table.turn_deadline) == (IP, at(120))


def test_undo_back_into_a_pause_keeps_it_stopped() -> None:
    state = ok(clocked(), pause(), P1, now=at(10))
    state = ok(state, kick(2), OP, now=at(11))
    state = ok(state, undo(), OP, now=at(100))
    assert (state.table.status, state.table.turn_remaining_ms) == (PA, 20_000)
    assert state.table.turn_deadline is None


def test_tables_kept_for_undo_hold_no_running_clock() -> None:
    state = ok(ok(clocked(), end(1), P1, now=at(1)), end(1), P2, now=at(2))
    assert all(table.turn_deadline is None for table in state.undo_stack)
    assert state.undo_stack[-1].turn_remaining_ms == SECONDS * 1000 - 1000


def test_replaying_the_same_timeout_is_deterministic() -> None:
    state = clocked()
    assert timeout(state, at(SECONDS)) == timeout(state, at(SECONDS))
    assert state == clocked()


def test_clients_cannot_send_a_timeout() -> None:
    with pytest.raises(DecodeError) as caught:
        decode_command(b'{"type": "turn_timeout", "expected_version": 3, "seat": 1}')
    assert caught.value.code is ErrorCode.UNKNOWN_COMMAND
