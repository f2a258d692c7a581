"""decode_command / decode_model / encode against the wire contract (docs/protocol.md)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from hub.protocol import (
    MAX_PAYLOAD_BYTES,
    Command,
    DecodeError,
    End,
    ErrorCode,
    Event,
    GameStatus,
    Join,
    Kick,
    Leave,
    Pause,
    PlayerView,
    Presence,
    Rename,
    Reply,
    Reset,
    Resume,
    Snapshot,
    Start,
    Stats,
    Status,
    Undo,
    decode_command,
    decode_model,
    encode,
)
from hub.protocol.messages import GameCounters

AT = datetime(2026, 11, 24, 8, 7, 48, 506000, tzinfo=UTC)
AT_WIRE = "2026-11-24T08:07:48.506Z"


def _json(value: Any) -> bytes:
    return json.dumps(value).encode()


def _decode_error(payload: bytes, **kwargs: Any) -> DecodeError:
    with pytest.raises(DecodeError) as info:
        decode_command(payload, **kwargs)
    return info.value


# --- invalid_json -----------------------------------------------------------------------

INVALID_JSON = [
    pytest.param(b"\xff\xfe{}", id="not-utf8"),
    pytest.param(b'{"type": "join", "name": "Al\xe9"}', id="latin1-in-string"),
    pytest.param(b"\xed\xa0\x80", id="utf8-encoded-surrogate"),
    pytest.param(b"", id="empty"),
    pytest.param(b"   ", id="blank"),
    pytest.param(b"{", id="truncated"),
    pytest.param(b"hello", id="bare-word"),
    pytest.param(b"{'type': 'leave'}", id="single-quotes"),
    pytest.param(b'{"type": "leave",}', id="trailing-comma"),
    pytest.param(b'{"type": "leave"} {}', id="two-documents"),
    pytest.param(b'{"type": "end_turn", "points": NaN}', id="nan"),
    pytest.param(b'{"type": "end_turn", "points": Infinity}', id="infinity"),
    pytest.param(b'{"type": "end_turn", "points": -Infinity}', id="minus-infinity"),
    pytest.param(b"[" * 5000 + b"]" * 5000, id="deeply-nested-array"),
    pytest.param(
        b'{"type":"join","name":' + b'{"a":' * 2500 + b"1" + b"}" * 2501,
        id="deeply-nested-object",
    ),
    pytest.param(b"[]", id="array"),
    pytest.param(b'[{"type": "leave"}]', id="array-of-command"),
    pytest.param(b'"leave"', id="string"),
    pytest.param(b"42", id="number"),
    pytest.param(b"null", id="null"),
    pytest.param(b"true", id="bool"),
]


@pytest.mark.parametrize("payload", INVALID_JSON)
def test_invalid_json(payload: bytes) -> None:
    err = _decode_error(payload)
    assert err.code is ErrorCode.INVALID_JSON
    assert err.request_id is None
    assert err.message
    assert str(err) == err.message


# --- invalid_command --------------------------------------------------------------------

INVALID_COMMAND: list[Any] = [
    # (payload, a word the message must contain)
    pytest.param({}, "type", id="no-type"),
    pytest.param({"name": "Al"}, "type", id="no-type-with-fields"),
    pytest.param({"type": 5}, "type", id="type-int"),
    pytest.param({"type": None}, "type", id="type-null"),
    pytest.param({"type": ["join"]}, "type", id="type-list"),
    # strict types: no "5" for 5, no true for 1, no 1.0 for 1
    pytest.param({"type": "end_turn", "points": "5"}, "points", id="points-str"),
    pytest.param({"type": "end_turn", "points": True}, "points", id="points-true"),
    pytest.param({"type": "end_turn", "points": 1.5}, "points", id="points-float"),
    pytest.param({"type": "end_turn", "points": 2.0}, "points", id="points-integral-float"),
    pytest.param({"type": "end_turn", "points": None}, "points", id="points-null"),
    pytest.param({"type": "start", "max_rounds": "5"}, "max_rounds", id="max-rounds-str"),
    pytest.param({"type": "start", "max_rounds": True}, "max_rounds", id="max-rounds-true"),
    pytest.param({"type": "start", "max_rounds": 3.0}, "max_rounds", id="max-rounds-float"),
    pytest.param({"type": "kick", "seat": "1"}, "seat", id="seat-str"),
    pytest.param({"type": "kick", "seat": True}, "seat", id="seat-true"),
    pytest.param({"type": "kick", "seat": 1.0}, "seat", id="seat-float"),
    pytest.param({"type": "join", "name": "Al", "seat": True}, "seat", id="join-seat-true"),
    pytest.param({"type": "join", "name": "Al", "seat": "2"}, "seat", id="join-seat-str"),
    pytest.param({"type": "undo", "expected_version": "3"}, "expected_version", id="ev-str"),
    pytest.param({"type": "undo", "expected_version": True}, "expected_version", id="ev-true"),
    pytest.param({"type": "undo", "expected_version": 1.0}, "expected_version", id="ev-float"),
    pytest.param({"type": "undo", "expected_version": -1}, "expected_version", id="ev-negative"),
    pytest.param({"type": "join", "name": 5}, "name", id="name-int"),
    pytest.param({"type": "join", "name": None}, "name", id="name-null"),
    pytest.param({"type": "join", "name": ["Al"]}, "name", id="name-list"),
    pytest.param({"type": "leave", "request_id": 5}, "request_id", id="request-id-int"),
    pytest.param({"type": "leave", "request_id": "r" * 65}, "request_id", id="request-id-65"),
    # missing fields
    pytest.param({"type": "join"}, "name", id="join-no-name"),
    pytest.param({"type": "rename"}, "name", id="rename-no-name"),
    pytest.param({"type": "kick"}, "seat", id="kick-no-seat"),
    # unknown fields
    pytest.param({"type": "leave", "foo": 1}, "foo", id="extra-field"),
    pytest.param({"type": "undo", "seat": 1}, "seat", id="field-of-another-command"),
    pytest.param({"type": "end_turn", "Points": 3}, "Points", id="field-wrong-case"),
    # names: 1-24 printable characters after trimming
    pytest.param({"type": "join", "name": ""}, "name", id="name-empty"),
    pytest.param({"type": "join", "name": "   "}, "name", id="name-blank"),
    pytest.param({"type": "join", "name": "\t\n"}, "name", id="name-whitespace"),
    pytest.param({"type": "join", "name": "x" * 25}, "name", id="name-25"),
    pytest.param({"type": "rename", "name": " " + "x" * 25 + " "}, "name", id="rename-25"),
    pytest.param({"type": "join", "name": "Al\nBob"}, "name", id="name-newline"),
    pytest.param({"type": "join", "name": "Al\x00"}, "name", id="name-nul"),
    pytest.param({"type": "join", "name": "Al\x1b[31m"}, "name", id="name-escape"),
    pytest.param({"type": "join", "name": "Al\x7f"}, "name", id="name-del"),
    pytest.param({"type": "join", "name": "A\u200bl"}, "name", id="name-zero-width"),
    pytest.param({"type": "join", "name": "Al\ud800"}, "name", id="name-lone-surrogate"),
    # ranges
    pytest.param({"type": "end_turn", "points": -1}, "points", id="points-negative"),
    pytest.param({"type": "end_turn", "points": 1001}, "points", id="points-1001"),
    pytest.param({"type": "start", "max_rounds": 0}, "max_rounds", id="max-rounds-0"),
    pytest.param({"type": "start", "max_rounds": 100}, "max_rounds", id="max-rounds-100"),
    pytest.param({"type": "kick", "seat": 0}, "seat", id="seat-0"),
    pytest.param({"type": "kick", "seat": 3}, "seat", id="seat-3"),
    pytest.param({"type": "join", "name": "Al", "seat": -1}, "seat", id="join-seat-negative"),
]


@pytest.mark.parametrize(("payload", "field"), INVALID_COMMAND)
def test_invalid_command(payload: dict[str, Any], field: str) -> None:
    err = _decode_error(_json(payload))
    assert err.code is ErrorCode.INVALID_COMMAND
    assert field in err.message


# --- unknown_command --------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["bogus", "JOIN", "Join", "", "end-turn", "endturn", " join"])
def test_unknown_command(kind: str) -> None:
    err = _decode_error(_json({"type": kind, "request_id": "u1"}))
    assert err.code is ErrorCode.UNKNOWN_COMMAND
    assert err.request_id == "u1"
    assert "end_turn" in err.message  # the message lists the known types


def test_unknown_command_message_is_bounded() -> None:
    err = _decode_error(_json({"type": "x" * 5000}))
    assert err.code is ErrorCode.UNKNOWN_COMMAND
    assert len(err.message) < 300


# --- payload_too_large ------------------------------------------------------------------


def _padded(size: int) -> bytes:
    body = b'{"type": "leave", "request_id": "big"}'
    return body + b" " * (size - len(body))


def test_payload_at_the_limit_is_accepted() -> None:
    assert decode_command(_padded(MAX_PAYLOAD_BYTES)) == Leave(type="leave", request_id="big")


def test_payload_over_the_limit_is_refused() -> None:
    err = _decode_error(_padded(MAX_PAYLOAD_BYTES + 1))
    assert err.code is ErrorCode.PAYLOAD_TOO_LARGE
    assert str(MAX_PAYLOAD_BYTES) in err.message


@pytest.mark.parametrize(
    "payload", [b"\xff" * (MAX_PAYLOAD_BYTES + 1), b"[" * (MAX_PAYLOAD_BYTES + 1)]
)
def test_size_is_checked_before_parsing(payload: bytes) -> None:
    assert _decode_error(payload).code is ErrorCode.PAYLOAD_TOO_LARGE


def test_custom_limit() -> None:
    payload = _padded(300)
    assert decode_command(payload, max_bytes=300).type == "leave"
    err = _decode_error(payload, max_bytes=299)
    assert err.code is ErrorCode.PAYLOAD_TOO_LARGE
    assert "299" in err.message


# --- request_id in DecodeError ----------------------------------------------------------

REQUEST_IDS = [
    pytest.param({"type": "end_turn", "points": "5", "request_id": "r1"}, "r1", id="invalid"),
    pytest.param({"type": "nope", "request_id": "r2"}, "r2", id="unknown"),
    pytest.param({"type": 7, "request_id": "r3"}, "r3", id="type-not-str"),
    pytest.param({"request_id": "r4"}, "r4", id="no-type"),
    pytest.param({"type": "leave", "x": 1, "request_id": "r" * 64}, "r" * 64, id="64-chars"),
    pytest.param({"type": "leave", "x": 1, "request_id": "é✓"}, "é✓", id="non-ascii"),
    pytest.param({"type": "leave", "request_id": "r" * 65}, None, id="65-chars"),
    pytest.param({"type": "leave", "x": 1, "request_id": 12}, None, id="int"),
    pytest.param({"type": "leave", "x": 1, "request_id": ["r"]}, None, id="list"),
    pytest.param({"type": "leave", "x": 1}, None, id="absent"),
    # a lone surrogate cannot be echoed in a UTF-8 reply
    pytest.param({"type": "leave", "request_id": "r\ud800"}, None, id="lone-surrogate"),
]


@pytest.mark.parametrize(("payload", "request_id"), REQUEST_IDS)
def test_request_id_is_kept_when_readable(payload: dict[str, Any], request_id: str | None) -> None:
    err = _decode_error(_json(payload))
    assert err.request_id == request_id
    if err.request_id is not None:  # it can be echoed in a reply
        reply = Reply.rejected(err.request_id, err.code, err.message)
        assert json.loads(encode(reply))["request_id"] == request_id


def test_rejection_of_every_failure_encodes() -> None:
    """Every DecodeError must be answerable: its reply encodes to UTF-8 JSON."""
    payloads: list[bytes] = []
    for param in INVALID_JSON + INVALID_COMMAND + REQUEST_IDS:
        value = param.values[0]
        payloads.append(value if isinstance(value, bytes) else _json(value))
    assert len(payloads) > 80
    for payload in payloads:
        err = _decode_error(payload)
        wire = json.loads(encode(Reply.rejected(err.request_id, err.code, err.message)))
        assert wire["error"]["code"] == err.code.value


# --- valid commands ---------------------------------------------------------------------

VALID: list[Any] = [
    pytest.param({"type": "join", "name": "Alice"}, Join(type="join", name="Alice"), id="join"),
    pytest.param(
        {"type": "join", "name": "  Alice  ", "seat": 2},
        Join(type="join", name="Alice", seat=2),
        id="join-trimmed-seat",
    ),
    pytest.param(
        {"type": "join", "name": "x" * 24, "seat": 1},
        Join(type="join", name="x" * 24, seat=1),
        id="join-24",
    ),
    pytest.param(
        {"type": "join", "name": " " + "x" * 24 + "\t"},
        Join(type="join", name="x" * 24),
        id="join-24-after-trim",
    ),
    pytest.param(
        {"type": "join", "name": "Zoë 😀", "seat": None},
        Join(type="join", name="Zoë 😀"),
        id="join-unicode",
    ),
    pytest.param({"type": "leave"}, Leave(type="leave"), id="leave"),
    pytest.param({"type": "rename", "name": "Bo"}, Rename(type="rename", name="Bo"), id="rename"),
    pytest.param({"type": "start"}, Start(type="start"), id="start"),
    pytest.param({"type": "start", "max_rounds": 1}, Start(type="start", max_rounds=1), id="s1"),
    pytest.param({"type": "start", "max_rounds": 99}, Start(type="start", max_rounds=99), id="s99"),
    pytest.param({"type": "start", "max_rounds": None}, Start(type="start"), id="start-null"),
    pytest.param({"type": "end_turn"}, End(type="end_turn", points=0), id="end-default-0"),
    pytest.param({"type": "end_turn", "points": 0}, End(type="end_turn"), id="end-0"),
    pytest.param(
        {"type": "end_turn", "points": 1000}, End(type="end_turn", points=1000), id="end-1000"
    ),
    pytest.param({"type": "pause"}, Pause(type="pause"), id="pause"),
    pytest.param({"type": "resume"}, Resume(type="resume"), id="resume"),
    pytest.param({"type": "reset"}, Reset(type="reset"), id="reset"),
    pytest.param({"type": "undo"}, Undo(type="undo"), id="undo"),
    pytest.param({"type": "kick", "seat": 2}, Kick(type="kick", seat=2), id="kick"),
    pytest.param(
        {"type": "undo", "request_id": "r" * 64, "expected_version": 0},
        Undo(type="undo", request_id="r" * 64, expected_version=0),
        id="request-id-64-ev-0",
    ),
    pytest.param(
        {"expected_version": 17, "points": 3, "type": "end_turn", "request_id": "b7"},
        End(type="end_turn", points=3, request_id="b7", expected_version=17),
        id="contract-example",
    ),
    pytest.param(
        {"type": "leave", "request_id": None, "expected_version": None},
        Leave(type="leave"),
        id="explicit-nulls",
    ),
]


@pytest.mark.parametrize(("payload", "expected"), VALID)
def test_valid_command(payload: dict[str, Any], expected: BaseModel) -> None:
    command = decode_command(_json(payload))
    assert command == expected
    assert type(command) is type(expected)


def test_commands_are_frozen() -> None:
    command = decode_command(b'{"type": "end_turn", "points": 3}')
    assert isinstance(command, End)
    with pytest.raises(ValidationError):
        command.points = 5  # type: ignore[misc]
    assert command.points == 3


@pytest.mark.parametrize(("payload", "expected"), VALID)
def test_command_round_trip(payload: dict[str, Any], expected: Command) -> None:
    assert decode_command(encode(expected)) == expected


# --- encode: the wire shape -------------------------------------------------------------


def test_reply_accepted_wire_shape() -> None:
    wire = encode(Reply.accepted("b7", 18))
    assert wire == b'{"request_id":"b7","ok":true,"version":18}'


def test_reply_rejected_wire_shape() -> None:
    reply = Reply.rejected("b7", ErrorCode.NOT_YOUR_TURN, "it is seat 2's turn")
    assert json.loads(encode(reply)) == {
        "request_id": "b7",
        "ok": False,
        "error": {"code": "not_your_turn", "message": "it is seat 2's turn"},
    }
    assert list(json.loads(encode(reply))) == ["request_id", "ok", "error"]


@pytest.mark.parametrize(
    "reply",
    [
        Reply.accepted(None, 0),
        Reply.rejected(None, ErrorCode.INVALID_JSON, "payload is not JSON"),
    ],
)
def test_reply_without_request_id_has_null(reply: Reply) -> None:
    wire = json.loads(encode(reply))
    assert "request_id" in wire
    assert wire["request_id"] is None
    assert decode_model(encode(reply), Reply) == reply


@pytest.mark.parametrize(
    "fields",
    [
        {"ok": True},
        {"ok": False},
        {"ok": True, "version": 1, "error": {"code": "forbidden", "message": "x"}},
        {"ok": False, "version": 1, "error": {"code": "forbidden", "message": "x"}},
        {"ok": False, "version": 1},
        {"ok": True, "error": {"code": "forbidden", "message": "x"}},
    ],
)
def test_reply_is_ok_with_version_xor_error(fields: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        Reply.model_validate(fields)


def test_reply_error_code_is_closed() -> None:
    with pytest.raises(DecodeError) as info:
        decode_model(b'{"request_id":null,"ok":false,"error":{"code":"oops","message":"x"}}', Reply)
    assert info.value.code is ErrorCode.INVALID_JSON


@pytest.mark.parametrize("code", list(ErrorCode))
def test_reply_round_trip_every_code(code: ErrorCode) -> None:
    reply = Reply.rejected("r", code, f"because {code}")
    assert decode_model(encode(reply), Reply) == reply
    assert json.loads(encode(reply))["error"]["code"] == code.value


def _snapshot() -> Snapshot:
    return Snapshot(
        game="main",
        version=17,
        epoch=3,
        status=GameStatus.IN_PROGRESS,
        p1_name="Alice",
        p2_name="Bob",
        current_round=2,
        max_rounds=5,
        current_player_id=1,
        players=(
            PlayerView(id=1, name="Alice", client_id="alice", connected=True, score=12),
            PlayerView(id=2, name="Bob", client_id="bob", connected=False, score=9),
        ),
        winner_id=None,
        updated_at=AT,
    )


def test_snapshot_wire_shape() -> None:
    assert json.loads(encode(_snapshot())) == {
        "schema": 1,
        "game": "main",
        "version": 17,
        "epoch": 3,
        "status": "in_progress",
        "p1_name": "Alice",
        "p2_name": "Bob",
        "current_round": 2,
        "max_rounds": 5,
        "current_player_id": 1,
        "players": [
            {"id": 1, "name": "Alice", "client_id": "alice", "connected": True, "score": 12},
            {"id": 2, "name": "Bob", "client_id": "bob", "connected": False, "score": 9},
        ],
        "winner_id": None,
        "updated_at": AT_WIRE,
        "turn_seconds": None,
        "turn_deadline": None,
        "turn_remaining_ms": None,
    }


def test_snapshot_round_trip() -> None:
    snap = _snapshot()
    assert decode_model(encode(snap), Snapshot) == snap


def test_snapshot_with_empty_seat_and_winner() -> None:
    snap = _snapshot().model_copy(
        update={
            "status": GameStatus.FINISHED,
            "p2_name": None,
            "players": (
                PlayerView(id=1, name="Alice", client_id="alice", connected=True, score=12),
                PlayerView(id=2, name=None, client_id=None, connected=False, score=0),
            ),
            "winner_id": 1,
        }
    )
    wire = json.loads(encode(snap))
    assert wire["players"][1] == {
        "id": 2,
        "name": None,
        "client_id": None,
        "connected": False,
        "score": 0,
    }
    assert wire["winner_id"] == 1
    assert wire["p2_name"] is None
    assert decode_model(encode(snap), Snapshot) == snap


def test_snapshot_schema_is_1() -> None:
    payload = json.loads(encode(_snapshot()))
    payload["schema"] = 2
    with pytest.raises(DecodeError):
        decode_model(_json(payload), Snapshot)


def test_event_wire_shape_leaves_out_absent_arguments() -> None:
    event = Event(
        game="main",
        version=18,
        type="end_turn",
        by="alice",
        at=AT,
        points=3,
        status=GameStatus.IN_PROGRESS,
    )
    assert json.loads(encode(event)) == {
        "game": "main",
        "version": 18,
        "type": "end_turn",
        "by": "alice",
        "at": AT_WIRE,
        "points": 3,
        "status": "in_progress",
    }
    assert decode_model(encode(event), Event) == event


def test_event_keeps_zero_points() -> None:
    event = Event(game="g", version=1, type="end_turn", by="a", at=AT, points=0)
    assert json.loads(encode(event))["points"] == 0


def test_event_with_every_argument_round_trips() -> None:
    event = Event(
        game="g",
        version=2,
        type="join",
        by="a",
        at=AT,
        name="Zoë",
        seat=2,
        points=0,
        max_rounds=9,
        status=GameStatus.NOT_STARTED,
    )
    wire = encode(event)
    assert "Zoë".encode() in wire  # UTF-8, not \u escapes
    assert decode_model(wire, Event) == event


@pytest.mark.parametrize(
    ("at", "wire"),
    [
        (AT, AT_WIRE),
        (datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC), "2026-01-02T03:04:05.000Z"),
        (datetime(2026, 1, 2, 3, 4, 5, 999999, tzinfo=UTC), "2026-01-02T03:04:05.999Z"),
        (
            datetime(2026, 1, 2, 10, 4, 5, 1000, tzinfo=timezone(timedelta(hours=7))),
            "2026-01-02T03:04:05.001Z",
        ),
    ],
)
def test_times_are_utc_with_milliseconds(at: datetime, wire: str) -> None:
    event = Event(game="g", version=1, type="reset", by="op", at=at)
    assert json.loads(encode(event))["at"] == wire
    status = Status(state="online", epoch=1, version="0.1.0", started_at=at)
    assert json.loads(encode(status))["started_at"] == wire
    assert decode_model(encode(status), Status).started_at == datetime.fromisoformat(wire)


def test_encode_is_compact_utf8() -> None:
    wire = encode(Presence(state="online"))
    assert wire == b'{"state":"online"}'


def test_status_and_stats_round_trip() -> None:
    status = Status(state="offline", epoch=4, version="0.1.0", started_at=AT)
    assert json.loads(encode(status)) == {
        "state": "offline",
        "epoch": 4,
        "version": "0.1.0",
        "started_at": AT_WIRE,
    }
    stats = Stats(
        clients_connected=3,
        commands_accepted=120,
        commands_rejected=4,
        games={"main": GameCounters(accepted=120, rejected=3)},
        uptime_s=812.4,
        epoch=3,
        at=AT,
    )
    assert decode_model(encode(stats), Stats) == stats
    assert json.loads(encode(stats))["games"] == {"main": {"accepted": 120, "rejected": 3}}


# --- decode_model -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        (b'{"state": "online"}', None),
        (b'{"state": "offline"}', None),
        (b'{"state": "maybe"}', ErrorCode.INVALID_JSON),
        (b'{"state": "online", "extra": 1}', ErrorCode.INVALID_JSON),
        (b"{}", ErrorCode.INVALID_JSON),
        (b"[]", ErrorCode.INVALID_JSON),
        (b"online", ErrorCode.INVALID_JSON),
        (b"\xff", ErrorCode.INVALID_JSON),
        (b'{"state": NaN}', ErrorCode.INVALID_JSON),
        (b'{"state": "online"}' + b" " * MAX_PAYLOAD_BYTES, ErrorCode.PAYLOAD_TOO_LARGE),
    ],
)
def test_decode_model(payload: bytes, code: ErrorCode | None) -> None:
    if code is None:
        assert decode_model(payload, Presence).state in ("online", "offline")
        return
    with pytest.raises(DecodeError) as info:
        decode_model(payload, Presence)
    assert info.value.code is code
