"""The table screen as text: every status, stale and live, the hub's and phones' states,
the turn clock, and the join URL with its QR code where it fits whole."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import qrcode
from qrcode.constants import ERROR_CORRECT_L

from pi_node.render import QR_QUIET_ZONE, LinkState, TableView, qr_lines, render_text
from tests.pi_node.conftest import snapshot

URL = "http://192.168.1.20:8080/?game=main&code=482913"
NOW = datetime(2026, 11, 24, 8, 9, 12, tzinfo=UTC)


def _view(**changes: object) -> TableView:
    values: dict[str, object] = {
        "game": "main",
        "join_url": URL,
        "snapshot": snapshot(),
        "live": True,
        "link": LinkState.CONNECTED,
        "hub_online": True,
        "epoch": 3,
    } | changes
    return TableView(**values)  # type: ignore[arg-type]


def test_a_game_in_progress() -> None:
    text = render_text(_view())
    assert "tablehub · game main" in text
    assert "▶ ALICE'S TURN" in text
    assert "round 2 of 5" in text
    for expected in ("Alice", "Bob", "12", "9", "● connected", "x away"):
        assert expected in text
    assert "hub online (epoch 3)" in text
    assert "version 17" in text
    assert "NOT LIVE" not in text
    assert URL in text
    assert "no join code yet" in text


def test_the_turn_marker_is_on_the_seat_to_move() -> None:
    lines = render_text(_view(snapshot=snapshot(current_player_id=2))).splitlines()
    assert any("▶ BOB'S TURN" in line for line in lines)
    bob = next(line for line in lines if "Bob" in line and "TURN" not in line)
    alice = next(line for line in lines if "Alice" in line)
    assert "▶" in bob
    assert "▶" not in alice


def test_whose_turn_is_a_block_across_the_screen() -> None:
    """Three lines of colour, the name in capitals: readable from across the table."""
    lines = render_text(_view(), width=80, height=24).splitlines()
    turn = next(i for i, line in enumerate(lines) if "ALICE'S TURN" in line)
    assert lines[turn - 1].strip("│ ") == lines[turn + 1].strip("│ ") == ""


@pytest.mark.parametrize(
    ("changes", "headline"),
    [
        ({"status": "paused"}, "round 2 of 5 · press START to resume"),
        ({"status": "finished", "winner_id": 1}, "FINISHED · Alice wins, 12 to 9"),
        (
            {
                "status": "finished",
                "winner_id": None,
                "players": [
                    {"id": 1, "name": "Alice", "client_id": "alice", "connected": True, "score": 5},
                    {"id": 2, "name": "Bob", "client_id": "bob", "connected": True, "score": 5},
                ],
            },
            "FINISHED · a draw, 5 to 5",
        ),
        ({"status": "not_started", "current_round": 0}, "Ready · 5 rounds · press START"),
        (
            {
                "status": "not_started",
                "p2_name": None,
                "players": [
                    {"id": 1, "name": "Alice", "client_id": "alice", "connected": True, "score": 0},
                    {"id": 2, "name": None, "client_id": None, "connected": False, "score": 0},
                ],
            },
            "Waiting for players · scan the code to join",
        ),
    ],
)
def test_headlines(changes: dict[str, object], headline: str) -> None:
    text = render_text(_view(snapshot=snapshot(**changes)))
    assert headline in text


def test_an_empty_seat() -> None:
    state = snapshot(
        status="not_started",
        p2_name=None,
        players=[
            {"id": 1, "name": "Alice", "client_id": "alice", "connected": True, "score": 0},
            {"id": 2, "name": None, "client_id": None, "connected": False, "score": 0},
        ],
    )
    text = render_text(_view(snapshot=state))
    assert "(empty seat)" in text
    assert text.count("● connected") == 1
    assert "x away" not in text  # an empty seat has no phone


def test_not_live_when_the_hub_does_not_confirm_the_state() -> None:
    text = render_text(_view(live=False, link=LinkState.DOWN, link_detail="Connection refused"))
    assert "NOT LIVE" in text
    assert "last known state from" in text
    assert "hub UNREACHABLE, reconnecting: Connection refused" in text
    assert "ALICE'S TURN" in text  # the last known game is still shown
    # what it cannot know is not claimed, and nobody is invited to a hub that is not there
    assert "connected" not in text.replace("hub", "")
    assert "x away" not in text
    assert text.count("unknown") == 2
    assert "Joining is paused" in text
    assert URL not in text
    assert "█" not in text


@pytest.mark.parametrize(
    "changes",
    [{"hub_online": False}, {"link": LinkState.TAKEN_OVER}, {"live": False}],
)
def test_phones_are_not_claimed_unless_the_hub_confirms(changes: dict[str, object]) -> None:
    text = render_text(_view(**changes))
    assert "● connected" not in text
    assert "█" not in text


def test_no_game_yet() -> None:
    text = render_text(_view(snapshot=None, live=False, link=LinkState.CONNECTING))
    assert "No game yet: waiting for the hub" in text
    assert "connecting to the hub" in text
    assert "NOT LIVE" not in text


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"hub_online": False}, "hub OFFLINE (state service stopped)"),
        ({"hub_online": None}, "hub: waiting for its status"),
        ({"link": LinkState.REFUSED, "link_detail": "Not authorized"}, "refused the login"),
        ({"link": LinkState.TAKEN_OVER}, "another pi-node is logged in as pi"),
    ],
)
def test_hub_states(changes: dict[str, object], expected: str) -> None:
    assert expected in render_text(_view(**changes), width=200)


def test_join_code_and_notice() -> None:
    text = render_text(_view(join_code="482913", notice="start refused: why"), width=80)
    assert URL in text
    assert "4 8 2 9 1 3" in text  # big, on its own
    assert "start refused: why" in text


def test_a_narrow_console_still_renders() -> None:
    text = render_text(_view(live=False, link=LinkState.DOWN), width=60)
    assert "NOT LIVE" in text
    assert all(len(line) <= 60 for line in text.splitlines())


def test_the_turn_clock_counts_down_from_the_deadline() -> None:
    clocked = snapshot(turn_seconds=30, turn_deadline="2026-11-24T08:09:40.000Z")
    assert "0:28 left" in render_text(_view(snapshot=clocked, now=NOW))
    late = datetime(2026, 11, 24, 8, 9, 39, 500_000, tzinfo=UTC)
    assert "0:01 left" in render_text(_view(snapshot=clocked, now=late))
    over = datetime(2026, 11, 24, 8, 10, tzinfo=UTC)
    assert "0:00 left" in render_text(_view(snapshot=clocked, now=over))
    paused = snapshot(status="paused", turn_seconds=30, turn_remaining_ms=64_100)
    assert "1:05 left" in render_text(_view(snapshot=paused, now=NOW))
    assert "left" not in render_text(_view(now=NOW))  # no clock


def _qr_rows(text: str) -> list[str]:
    """The screen's QR code block: the lines with blocks, cut to the block's columns."""
    lines = [line for line in text.splitlines() if "██" in line]
    if not lines:
        return []
    left = min(line.index("█") for line in lines)
    right = max(line.rindex("█") for line in lines) + 1
    return [line[left:right] for line in lines]


@pytest.mark.parametrize(("width", "height"), [(120, 40), (160, 45), (240, 67)])
def test_the_qr_code_is_drawn_whole_where_it_fits(width: int, height: int) -> None:
    text = render_text(_view(join_code="482913"), width=width, height=height)
    assert len(text.splitlines()) <= height
    code = qrcode.QRCode(border=0, error_correction=ERROR_CORRECT_L)
    code.add_data(URL)
    code.make(fit=True)
    expected = ["".join("██" if dark else "  " for dark in row) for row in code.get_matrix()]
    assert _qr_rows(text) == expected
    assert "482913" in text
    assert URL in text.replace("│", "").replace("\n", "").replace(" ", "") or URL[:30] in text


@pytest.mark.parametrize(
    ("width", "height", "url"),
    [(80, 24, URL), (120, 33, URL), (120, 40, URL + "&" + "x" * 60), (100, 40, URL)],
)
def test_no_qr_code_where_it_does_not_fit_whole(width: int, height: int, url: str) -> None:
    text = render_text(_view(join_url=url, join_code="482913"), width=width, height=height)
    assert "█" not in text
    assert "4 8 2 9 1 3" in text
    assert url[:40] in text
    assert len(text.splitlines()) <= height


def test_names_are_shown_whole_at_80_columns() -> None:
    name = "Maximilian Oberhausen"
    players = [
        {"id": 1, "name": name, "client_id": "alice", "connected": True, "score": 12},
        {"id": 2, "name": "Bob", "client_id": "bob", "connected": False, "score": 9},
    ]
    text = render_text(_view(snapshot=snapshot(players=players)), width=80, height=24)
    assert name in text


def test_the_qr_code_has_a_quiet_zone_of_four_modules() -> None:
    lines = qr_lines(URL)
    code = qrcode.QRCode(border=QR_QUIET_ZONE, error_correction=ERROR_CORRECT_L)
    code.add_data(URL)
    code.make(fit=True)
    matrix = code.get_matrix()
    assert len(lines) == len(matrix)
    assert {len(line) for line in lines} == {2 * len(matrix)}
    assert [[line[2 * i] == "█" for i in range(len(matrix))] for line in lines] == matrix
    assert all(line.strip() == "" for line in lines[:QR_QUIET_ZONE] + lines[-QR_QUIET_ZONE:])
    assert all(line[: 2 * QR_QUIET_ZONE].strip() == "" for line in lines)
