"""The game rules: ``apply(state, command, actor=, now=)``, one table per command."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from hub.protocol import (
    Command,
    End,
    ErrorCode,
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
from hub.state.model import UNDO_DEPTH, Actor, GameState, Role, Round, SeatHolder
from hub.state.reducer import Accepted, Rejected, apply

T0 = datetime(2026, 11, 24, 8, 0, tzinfo=UTC)
LATER = T0 + timedelta(seconds=5)

P1 = Actor("p1", Role.PLAYER)
P2 = Actor("p2", Role.PLAYER)
P3 = Actor("p3", Role.PLAYER)
OP = Actor("op", Role.OPERATOR)
DISPLAY = Actor("pi", Role.DISPLAY)
SERVICE = Actor("svc", Role.SERVICE)

NS, IP, PA, FI = (
    GameStatus.NOT_STARTED,
    GameStatus.IN_PROGRESS,
    GameStatus.PAUSED,
    GameStatus.FINISHED,
)


def join(name: str = "Al", seat: int | None = None, **kw: int) -> Join:
    return Join.model_validate({"type": "join", "name": name, "seat": seat, **kw})


def leave(**kw: int) -> Leave:
    return Leave.model_validate({"type": "leave", **kw})


def rename(name: str) -> Rename:
    return Rename(type="rename", name=name)


def start(max_rounds: int | None = None, **kw: int) -> Start:
    return Start.model_validate({"type": "start", "max_rounds": max_rounds, **kw})


def end(points: int = 0, **kw: int) -> End:
    return End.model_validate({"type": "end_turn", "points": points, **kw})


def pause() -> Pause:
    return Pause(type="pause")


def resume() -> Resume:
    return Resume(type="resume")


def reset() -> Reset:
    return Reset(type="reset")


def undo(**kw: int) -> Undo:
    return Undo.model_validate({"type": "undo", **kw})


def kick(seat: int) -> Kick:
    return Kick.model_validate({"type": "kick", "seat": seat})


# --- helpers ----------------------------------------------------------------------------


def new_game(max_rounds: int = 3) -> GameState:
    return GameState.new("main", max_rounds=max_rounds, now=T0)


def ok(state: GameState, command: Command, actor: Actor, *, now: datetime = LATER) -> GameState:
    """Apply a command that must be accepted; check the version and the event."""
    outcome = apply(state, command, actor=actor, now=now)
    assert isinstance(outcome, Accepted), outcome
    new, event = outcome.state, outcome.event
    assert new.version == state.version + 1
    assert new.game == state.game
    assert new.updated_at == now
    assert event.game == state.game
    assert event.version == new.version
    assert event.type == command.type
    assert event.by == actor.client_id
    assert event.at == now
    assert event.status is new.table.status
    return new


def refused(state: GameState, command: Command, actor: Actor) -> ErrorCode:
    """Apply a command that must be rejected; check that it changed nothing."""
    before = state.model_copy(deep=True)
    outcome = apply(state, command, actor=actor, now=LATER)
    assert isinstance(outcome, Rejected), outcome
    assert outcome.message
    assert state == before
    return outcome.code


def seated(max_rounds: int = 3) -> GameState:
    state = ok(new_game(max_rounds), join("Alice"), P1)
    return ok(state, join("Bob"), P2)


def playing(max_rounds: int = 3) -> GameState:
    return ok(seated(max_rounds), start(), P1)


def paused() -> GameState:
    return ok(playing(), pause(), P1)


def finished() -> GameState:
    state = playing(max_rounds=1)
    state = ok(state, end(4), P1)
    return ok(state, end(2), P2)


def one_seated() -> GameState:
    return ok(new_game(), join("Alice"), P1)


def holders(state: GameState) -> tuple[str | None, str | None]:
    a, b = state.table.seats
    return (a.client_id if a else None, b.client_id if b else None)


STATES = {
    "empty": new_game,
    "one_seated": one_seated,
    "seated": seated,
    "playing": playing,
    "paused": paused,
    "finished": finished,
}


def test_new_game() -> None:
    state = new_game(4)
    assert state.version == 0
    assert state.undo_stack == ()
    assert state.updated_at == T0
    assert state.table == Round(max_rounds=4, default_rounds=4)
    table = state.table
    assert (table.status, table.current_round, table.current_player_id) == (NS, 0, 1)
    assert (table.scores, table.seats, table.winner_id) == ((0, 0), (None, None), None)


# --- roles ------------------------------------------------------------------------------

ALLOWED: dict[str, set[Role]] = {
    "join": {Role.PLAYER, Role.OPERATOR},
    "leave": {Role.PLAYER, Role.OPERATOR},
    "rename": {Role.PLAYER, Role.OPERATOR},
    "start": {Role.PLAYER, Role.OPERATOR, Role.DISPLAY},
    "end_turn": {Role.PLAYER, Role.OPERATOR},
    "pause": {Role.PLAYER, Role.OPERATOR, Role.DISPLAY},
    "resume": {Role.PLAYER, Role.OPERATOR, Role.DISPLAY},
    "reset": {Role.OPERATOR, Role.DISPLAY},
    "undo": {Role.OPERATOR},
    "kick": {Role.OPERATOR},
}
COMMANDS: list[Command] = [
    join(),
    leave(),
    rename("X"),
    start(),
    end(),
    pause(),
    resume(),
    reset(),
    undo(),
    kick(1),
]


@pytest.mark.parametrize("role", list(Role))
@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c.type)
@pytest.mark.parametrize("where", sorted(STATES))
def test_roles(where: str, command: Command, role: Role) -> None:
    state = STATES[where]()
    actor = Actor("someone", role)
    if role in ALLOWED[command.type]:
        outcome = apply(state, command, actor=actor, now=LATER)
        assert not (isinstance(outcome, Rejected) and outcome.code is ErrorCode.FORBIDDEN)
    else:
        assert refused(state, command, actor) is ErrorCode.FORBIDDEN


def test_forbidden_even_when_seated() -> None:
    """A seated player still may not undo, kick or reset."""
    state = playing()
    for command in (undo(), kick(2), reset()):
        assert refused(state, command, P1) is ErrorCode.FORBIDDEN


# --- expected_version -------------------------------------------------------------------


def test_expected_version_matching_is_accepted() -> None:
    state = seated()
    assert state.version == 2
    assert ok(state, start(expected_version=2), P1).table.status is IP


@pytest.mark.parametrize("expected", [0, 1, 3, 100])
def test_expected_version_mismatch(expected: int) -> None:
    state = seated()
    assert refused(state, start(expected_version=expected), P1) is ErrorCode.VERSION_CONFLICT


@pytest.mark.parametrize(
    ("make", "command", "actor"),
    [
        (seated, end(expected_version=0), P1),  # would be wrong_status
        (new_game, undo(expected_version=5), OP),  # would be nothing_to_undo
        (new_game, leave(expected_version=1), P1),  # would be not_seated
    ],
)
def test_version_conflict_comes_before_the_rules(
    make: Callable[[], GameState], command: Command, actor: Actor
) -> None:
    assert refused(make(), command, actor) is ErrorCode.VERSION_CONFLICT


# --- join -------------------------------------------------------------------------------


def test_join_takes_first_free_seat() -> None:
    state = ok(new_game(), join("  Alice "), P1)
    assert holders(state) == ("p1", None)
    assert state.table.seats[0] == SeatHolder(client_id="p1", name="Alice")
    state = ok(state, join("Bob"), P2)
    assert holders(state) == ("p1", "p2")
    assert state.table.status is NS


def test_join_given_seat() -> None:
    state = ok(new_game(), join("Bob", seat=2), P2)
    assert holders(state) == (None, "p2")
    state = ok(state, join("Alice"), P1)  # first free is seat 1
    assert holders(state) == ("p1", "p2")


def test_join_event() -> None:
    outcome = apply(new_game(), join("Alice", seat=2), actor=P1, now=LATER)
    assert isinstance(outcome, Accepted)
    assert (outcome.event.name, outcome.event.seat, outcome.event.status) == ("Alice", 2, NS)
    assert outcome.event.points is None
    assert outcome.event.max_rounds is None


def test_operator_may_take_a_seat() -> None:
    state = ok(one_seated(), join("Ops"), OP)
    assert holders(state) == ("p1", "op")


def test_join_second_free_seat_after_leave() -> None:
    state = ok(seated(), leave(), P1)
    state = ok(state, join("Carol"), P3)
    assert holders(state) == ("p3", "p2")


@pytest.mark.parametrize(
    ("make", "command", "actor", "code"),
    [
        (one_seated, join("X", seat=1), P2, ErrorCode.SEAT_TAKEN),
        (seated, join("X", seat=2), P3, ErrorCode.SEAT_TAKEN),
        (seated, join("X"), P3, ErrorCode.GAME_FULL),
        (seated, join("X"), OP, ErrorCode.GAME_FULL),
        (one_seated, join("X"), P1, ErrorCode.ALREADY_SEATED),
        (one_seated, join("X", seat=2), P1, ErrorCode.ALREADY_SEATED),
        (one_seated, join("X", seat=1), P1, ErrorCode.ALREADY_SEATED),
        (seated, join("X"), P1, ErrorCode.ALREADY_SEATED),  # before game_full
        (playing, join("X"), P3, ErrorCode.GAME_FULL),
        (finished, join("X"), P2, ErrorCode.ALREADY_SEATED),
    ],
)
def test_join_rejections(
    make: Callable[[], GameState], command: Command, actor: Actor, code: ErrorCode
) -> None:
    assert refused(make(), command, actor) is code


def test_join_a_paused_game_after_a_kick() -> None:
    state = ok(playing(), kick(2), OP)
    assert state.table.status is PA
    state = ok(state, join("Carol"), P3)
    assert holders(state) == ("p1", "p3")
    assert ok(state, resume(), P3).table.status is IP


# --- leave ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("where", "status_after", "scores_after"),
    [("seated", NS, (0, 0)), ("paused", PA, (5, 0)), ("finished", NS, (0, 0))],
)
def test_leave_takes_the_score_along(
    where: str, status_after: GameStatus, scores_after: tuple[int, int]
) -> None:
    before = STATES[where]()
    if where == "paused":
        before = ok(ok(ok(before, resume(), P1), end(5), P1), end(6), P2)
        before = ok(before, pause(), P1)
    outcome = apply(before, leave(), actor=P2, now=LATER)
    assert isinstance(outcome, Accepted)
    state = outcome.state
    assert holders(state) == ("p1", None)
    assert state.table.status is status_after
    assert state.table.scores == scores_after
    assert outcome.event.score == before.table.scores[1]


@pytest.mark.parametrize(
    ("where", "actor", "code"),
    [
        ("empty", P1, ErrorCode.NOT_SEATED),
        ("seated", P3, ErrorCode.NOT_SEATED),
        ("seated", OP, ErrorCode.NOT_SEATED),
        ("playing", P1, ErrorCode.WRONG_STATUS),
        ("playing", P2, ErrorCode.WRONG_STATUS),
        ("playing", P3, ErrorCode.NOT_SEATED),
    ],
)
def test_leave_rejections(where: str, actor: Actor, code: ErrorCode) -> None:
    assert refused(STATES[where](), leave(), actor) is code


# --- rename -----------------------------------------------------------------------------


@pytest.mark.parametrize("where", ["seated", "playing", "paused", "finished"])
def test_rename(where: str) -> None:
    before = STATES[where]()
    state = ok(before, rename("Robert"), P2)
    assert state.table.seats[1] == SeatHolder(client_id="p2", name="Robert")
    assert state.table.seats[0] == before.table.seats[0]
    assert state.table.model_copy(update={"seats": before.table.seats}) == before.table


def test_rename_event() -> None:
    outcome = apply(seated(), rename("Al2"), actor=P1, now=LATER)
    assert isinstance(outcome, Accepted)
    assert outcome.event.name == "Al2"


@pytest.mark.parametrize("actor", [P3, OP])
def test_rename_needs_a_seat(actor: Actor) -> None:
    assert refused(seated(), rename("X"), actor) is ErrorCode.NOT_SEATED


# --- start ------------------------------------------------------------------------------


@pytest.mark.parametrize("actor", [P1, P2, OP, DISPLAY])
def test_start(actor: Actor) -> None:
    state = ok(seated(max_rounds=4), start(), actor)
    table = state.table
    assert table.status is IP
    assert (table.current_round, table.current_player_id) == (1, 1)
    assert (table.scores, table.winner_id, table.max_rounds) == ((0, 0), None, 4)


def test_start_with_max_rounds() -> None:
    outcome = apply(seated(), start(7), actor=P2, now=LATER)
    assert isinstance(outcome, Accepted)
    assert outcome.state.table.max_rounds == 7
    assert outcome.event.max_rounds == 7


def test_start_event_says_the_rounds_used() -> None:
    outcome = apply(seated(max_rounds=4), start(), actor=P2, now=LATER)
    assert isinstance(outcome, Accepted)
    assert outcome.event.max_rounds == 4
    assert outcome.event.status is IP


def test_restart_a_finished_game() -> None:
    before = finished()
    assert before.table.scores == (4, 2)
    state = ok(before, start(2), P2)
    table = state.table
    assert (table.status, table.current_round, table.current_player_id) == (IP, 1, 1)
    assert (table.scores, table.winner_id, table.max_rounds) == ((0, 0), None, 2)


@pytest.mark.parametrize(
    ("where", "actor", "code"),
    [
        ("empty", OP, ErrorCode.NOT_ENOUGH_PLAYERS),
        ("one_seated", P1, ErrorCode.NOT_ENOUGH_PLAYERS),
        ("one_seated", DISPLAY, ErrorCode.NOT_ENOUGH_PLAYERS),
        ("one_seated", P2, ErrorCode.NOT_SEATED),
        ("seated", P3, ErrorCode.NOT_SEATED),
        ("playing", P1, ErrorCode.WRONG_STATUS),
        ("playing", OP, ErrorCode.WRONG_STATUS),
        ("paused", P1, ErrorCode.WRONG_STATUS),
        ("paused", DISPLAY, ErrorCode.WRONG_STATUS),
    ],
)
def test_start_rejections(where: str, actor: Actor, code: ErrorCode) -> None:
    assert refused(STATES[where](), start(), actor) is code


# --- end_turn ---------------------------------------------------------------------------


def test_end_turn_passes_the_turn_and_scores() -> None:
    state = ok(playing(max_rounds=2), end(3), P1)
    table = state.table
    assert (table.scores, table.current_player_id, table.current_round) == ((3, 0), 2, 1)
    state = ok(state, end(5), P2)
    table = state.table
    assert (table.scores, table.current_player_id, table.current_round) == ((3, 5), 1, 2)
    assert table.status is IP


def test_end_turn_event() -> None:
    outcome = apply(playing(), end(), actor=P1, now=LATER)
    assert isinstance(outcome, Accepted)
    assert outcome.event.points == 0
    assert outcome.event.status is IP
    assert (outcome.event.name, outcome.event.seat, outcome.event.max_rounds) == (None,) * 3


def test_operator_in_a_seat_plays() -> None:
    state = ok(ok(ok(new_game(), join("Ops"), OP), join("Bob"), P2), start(1), OP)
    state = ok(ok(state, end(10), OP), end(1), P2)
    assert (state.table.status, state.table.winner_id) == (FI, 1)


@pytest.mark.parametrize(
    ("where", "actor", "code"),
    [
        ("empty", P1, ErrorCode.WRONG_STATUS),
        ("seated", P1, ErrorCode.WRONG_STATUS),
        ("paused", P1, ErrorCode.WRONG_STATUS),
        ("finished", P1, ErrorCode.WRONG_STATUS),
        ("finished", P2, ErrorCode.WRONG_STATUS),
        ("playing", P2, ErrorCode.NOT_YOUR_TURN),
        ("playing", P3, ErrorCode.NOT_SEATED),
        ("playing", OP, ErrorCode.NOT_SEATED),
    ],
)
def test_end_turn_rejections(where: str, actor: Actor, code: ErrorCode) -> None:
    assert refused(STATES[where](), end(1), actor) is code


def test_seat_1_cannot_move_twice() -> None:
    state = ok(playing(), end(1), P1)
    assert refused(state, end(1), P1) is ErrorCode.NOT_YOUR_TURN


@pytest.mark.parametrize(
    ("turns", "scores", "winner"),
    [
        ([3, 5, 4, 1], (7, 6), 1),
        ([0, 1000, 1000, 0], (1000, 1000), None),
        ([0, 0, 0, 0], (0, 0), None),
        ([10, 0, 0, 11], (10, 11), 2),
    ],
)
def test_full_game(turns: list[int], scores: tuple[int, int], winner: int | None) -> None:
    state = playing(max_rounds=2)
    players = [P1, P2, P1, P2]
    for index, (actor, points) in enumerate(zip(players, turns, strict=True)):
        assert state.table.status is IP
        assert state.table.current_round == 1 + index // 2
        assert state.table.current_player_id == 1 + index % 2
        state = ok(state, end(points), actor)
    table = state.table
    assert table.status is FI
    assert table.scores == scores
    assert table.winner_id == winner
    assert table.current_round == 2
    assert table.current_player_id == 1
    assert state.version == 2 + 1 + 4
    assert refused(state, end(1), P1) is ErrorCode.WRONG_STATUS


def test_one_round_game_ends_after_seat_2() -> None:
    state = ok(playing(max_rounds=1), end(1), P1)
    assert state.table.status is IP
    outcome = apply(state, end(0), actor=P2, now=LATER)
    assert isinstance(outcome, Accepted)
    assert outcome.event.status is FI
    assert outcome.state.table.winner_id == 1


# --- pause / resume ---------------------------------------------------------------------


@pytest.mark.parametrize("actor", [P1, P2, OP, DISPLAY])
def test_pause_and_resume(actor: Actor) -> None:
    before = ok(playing(), end(3), P1)
    state = ok(before, pause(), actor)
    assert state.table.status is PA
    state = ok(state, resume(), actor)
    assert state.table == before.table


def test_turns_wait_while_paused() -> None:
    state = ok(playing(), pause(), OP)
    assert refused(state, end(1), P1) is ErrorCode.WRONG_STATUS


@pytest.mark.parametrize(
    ("where", "actor", "code"),
    [
        ("empty", OP, ErrorCode.WRONG_STATUS),
        ("seated", P1, ErrorCode.WRONG_STATUS),
        ("paused", P1, ErrorCode.WRONG_STATUS),
        ("finished", DISPLAY, ErrorCode.WRONG_STATUS),
        ("playing", P3, ErrorCode.NOT_SEATED),
    ],
)
def test_pause_rejections(where: str, actor: Actor, code: ErrorCode) -> None:
    assert refused(STATES[where](), pause(), actor) is code


@pytest.mark.parametrize(
    ("where", "actor", "code"),
    [
        ("empty", OP, ErrorCode.WRONG_STATUS),
        ("seated", P1, ErrorCode.WRONG_STATUS),
        ("playing", P1, ErrorCode.WRONG_STATUS),
        ("finished", DISPLAY, ErrorCode.WRONG_STATUS),
        ("paused", P3, ErrorCode.NOT_SEATED),
    ],
)
def test_resume_rejections(where: str, actor: Actor, code: ErrorCode) -> None:
    assert refused(STATES[where](), resume(), actor) is code


@pytest.mark.parametrize("actor", [P1, OP, DISPLAY])
def test_resume_needs_both_seats(actor: Actor) -> None:
    state = ok(paused(), leave(), P2)
    assert refused(state, resume(), actor) is ErrorCode.NOT_ENOUGH_PLAYERS


# --- reset ------------------------------------------------------------------------------


@pytest.mark.parametrize("where", sorted(STATES))
@pytest.mark.parametrize("actor", [OP, DISPLAY])
def test_reset(where: str, actor: Actor) -> None:
    before = STATES[where]()
    state = ok(before, reset(), actor)
    default = before.table.default_rounds
    assert state.table == Round(
        seats=before.table.seats, max_rounds=default, default_rounds=default
    )
    assert state.table.status is NS
    assert state.table.scores == (0, 0)
    assert state.table.current_round == 0


def test_reset_mid_game_keeps_seats_and_rounds() -> None:
    state = ok(ok(ok(playing(max_rounds=6), end(9), P1), end(8), P2), reset(), DISPLAY)
    table = state.table
    assert holders(state) == ("p1", "p2")
    assert (table.status, table.scores, table.current_round) == (NS, (0, 0), 0)
    assert (table.current_player_id, table.winner_id, table.max_rounds) == (1, None, 6)


# --- kick -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("where", "status_after"),
    [("seated", NS), ("playing", PA), ("paused", PA), ("finished", NS)],
)
@pytest.mark.parametrize("seat", [1, 2])
def test_kick(where: str, status_after: GameStatus, seat: int) -> None:
    before = STATES[where]()
    outcome = apply(before, kick(seat), actor=OP, now=LATER)
    assert isinstance(outcome, Accepted)
    state = outcome.state
    assert state.table.holder(1 if seat == 1 else 2) is None
    assert state.table.holder(2 if seat == 1 else 1) is not None
    assert state.table.status is status_after
    kept = 0 if where == "finished" else before.table.scores[2 - seat]
    assert state.table.scores[2 - seat] == kept
    assert state.table.scores[seat - 1] == 0
    assert (outcome.event.seat, outcome.event.status) == (seat, status_after)
    assert outcome.event.score == before.table.scores[seat - 1]


def test_kick_during_a_turn_pauses_keeps_the_turn_and_clears_the_seat_score() -> None:
    before = ok(ok(playing(), end(3), P1), end(4), P2)
    state = ok(before, kick(1), OP)
    assert state.table.status is PA
    assert state.table.scores == (0, 4)
    assert state.table.model_copy(
        update={"seats": before.table.seats, "status": IP, "scores": (3, 4)}
    ) == (before.table)


def test_the_next_player_in_a_kicked_seat_starts_from_zero() -> None:
    before = ok(ok(playing(), end(30), P1), end(4), P2)
    state = ok(ok(before, kick(1), OP), join("Carol"), P3)
    assert holders(state) == ("p3", "p2")
    assert state.table.scores == (0, 4)
    state = ok(ok(state, resume(), P3), end(1), P3)
    assert state.table.scores == (1, 4)


def test_undo_of_a_kick_gives_the_seat_and_its_score_back() -> None:
    before = ok(ok(playing(), end(30), P1), end(4), P2)
    assert ok(ok(before, kick(1), OP), undo(), OP).table == before.table


@pytest.mark.parametrize(("where", "seat"), [("empty", 1), ("empty", 2), ("one_seated", 2)])
def test_kick_an_empty_seat(where: str, seat: int) -> None:
    assert refused(STATES[where](), kick(seat), OP) is ErrorCode.NOT_SEATED


def test_kicked_client_can_join_again() -> None:
    state = ok(ok(seated(), kick(1), OP), join("Alice again"), P1)
    assert holders(state) == ("p1", "p2")


# --- undo -------------------------------------------------------------------------------


def test_undo_with_nothing_to_undo() -> None:
    assert refused(new_game(), undo(), OP) is ErrorCode.NOTHING_TO_UNDO


def test_undo_restores_the_table_as_a_new_version() -> None:
    before = playing()
    after = ok(before, end(7), P1)
    outcome = apply(after, undo(), actor=OP, now=LATER + timedelta(seconds=1))
    assert isinstance(outcome, Accepted)
    state = outcome.state
    assert state.version == after.version + 1
    assert state.table == before.table
    assert state.undo_stack == before.undo_stack
    assert state.updated_at == LATER + timedelta(seconds=1)
    assert outcome.event.type == "undo"
    assert outcome.event.status is IP


def test_undo_chain_back_to_the_start() -> None:
    states = [new_game()]
    script: list[tuple[Command, Actor]] = [
        (join("A"), P1),
        (join("B"), P2),
        (start(2), P1),
        (end(3), P1),
        (kick(2), OP),
        (reset(), DISPLAY),
    ]
    for command, actor in script:
        states.append(ok(states[-1], command, actor))
    state = states[-1]
    for earlier in reversed(states[:-1]):
        state = ok(state, undo(), OP)
        assert state.table == earlier.table
    assert state.version == 2 * len(script)
    assert state.undo_stack == ()
    assert refused(state, undo(), OP) is ErrorCode.NOTHING_TO_UNDO


def test_undo_is_not_undone_by_undo() -> None:
    """Repeated undo steps further back; it never redoes."""
    s1 = ok(new_game(), join("A"), P1)
    s2 = ok(s1, join("B"), P2)
    s3 = ok(s2, rename("C"), P2)
    u1 = ok(s3, undo(), OP)
    assert u1.table == s2.table
    u2 = ok(u1, undo(), OP)
    assert u2.table == s1.table
    assert u2.table != s3.table


def test_command_after_undo_then_undo() -> None:
    s1 = ok(new_game(), join("A"), P1)
    s2 = ok(s1, join("B"), P2)
    u1 = ok(s2, undo(), OP)
    s3 = ok(u1, join("C"), P3)
    assert holders(s3) == ("p1", "p3")
    assert ok(s3, undo(), OP).table == s1.table


def test_undo_of_a_finish() -> None:
    last_turn = ok(playing(max_rounds=1), end(5), P1)
    done = ok(last_turn, end(9), P2)
    assert (done.table.status, done.table.winner_id) == (FI, 2)
    state = ok(done, undo(), OP)
    assert state.table == last_turn.table
    assert state.table.winner_id is None
    assert ok(state, end(1), P2).table.winner_id == 1


def test_undo_depth_is_bounded() -> None:
    state = playing(max_rounds=99)
    tables = [state.table]
    for turn in range(UNDO_DEPTH + 8):
        state = ok(state, end(turn), P1 if turn % 2 == 0 else P2)
        tables.append(state.table)
    assert len(state.undo_stack) == UNDO_DEPTH
    for back in range(1, UNDO_DEPTH + 1):
        state = ok(state, undo(), OP)
        assert state.table == tables[-1 - back]
    assert refused(state, undo(), OP) is ErrorCode.NOTHING_TO_UNDO


def test_rejected_commands_are_not_undone() -> None:
    s1 = ok(new_game(), join("A"), P1)
    assert refused(s1, join("B", seat=1), P2) is ErrorCode.SEAT_TAKEN
    assert len(s1.undo_stack) == 1
    assert ok(s1, undo(), OP).table == new_game().table


# --- purity -----------------------------------------------------------------------------


def test_apply_is_deterministic_and_does_not_mutate() -> None:
    state = playing()
    copy = state.model_copy(deep=True)
    first = apply(state, end(3), actor=P1, now=LATER)
    second = apply(state, end(3), actor=P1, now=LATER)
    assert first == second
    assert state == copy


def test_plain_start_uses_the_configured_rounds_not_the_last_games() -> None:
    state = new_game(5)
    steps: list[tuple[Actor, Command]] = [
        (P1, join("A")),
        (P2, join("B")),
        (P1, start(2)),
        (OP, Reset(type="reset")),
    ]
    for actor, command in steps:
        outcome = apply(state, command, actor=actor, now=T0)
        assert isinstance(outcome, Accepted)
        state = outcome.state
    assert state.table.max_rounds == 5
    outcome = apply(state, start(), actor=P1, now=T0)
    assert isinstance(outcome, Accepted)
    assert outcome.state.table.max_rounds == 5
