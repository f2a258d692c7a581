"""The table screen as text: every status, stale and live, the hub's and phones' states,
and the join URL with its QR code."""

from __future__ import annotations

import pytest
import qrcode
from qrcode.constants import ERROR_CORRECT_L

from pi_node.render import LinkState, TableView, qr_lines, render_text
from tests.pi_node.conftest import snapshot

URL = "http://192.168.1.20:8080/?game=main"


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
    assert "Round 2 of 5  ·  Alice's turn" in text
    for expected in ("Alice", "Bob", "12", "9", "● connected", "○ away"):
        assert expected in text
    assert "hub online (epoch 3)" in text
    assert "version 17" in text
    assert "STALE" not in text
    assert URL in text
    assert "no join code yet" in text


def test_the_turn_marker_is_on_the_seat_to_move() -> None:
    lines = render_text(_view(snapshot=snapshot(current_player_id=2))).splitlines()
    bob = next(line for line in lines if "Bob" in line and "turn" not in line)
    alice = next(line for line in lines if "Alice" in line)
    assert "▶" in bob
    assert "▶" not in alice


@pytest.mark.parametrize(
    ("changes", "headline"),
    [
        ({"status": "paused"}, "PAUSED  ·  round 2 of 5  ·  press START to resume"),
        ({"status": "finished", "winner_id": 1}, "FINISHED  ·  Alice wins, 12 to 9"),
        (
            {
                "status": "finished",
                "winner_id": None,
                "players": [
                    {"id": 1, "name": "Alice", "client_id": "alice", "connected": True, "score": 5},
                    {"id": 2, "name": "Bob", "client_id": "bob", "connected": True, "score": 5},
                ],
            },
            "FINISHED  ·  a draw, 5 to 5",
        ),
        ({"status": "not_started", "current_round": 0}, "Ready  ·  5 rounds  ·  press START"),
        (
            {
                "status": "not_started",
                "p2_name": None,
                "players": [
                    {"id": 1, "name": "Alice", "client_id": "alice", "connected": True, "score": 0},
                    {"id": 2, "name": None, "client_id": None, "connected": False, "score": 0},
                ],
            },
            "Waiting for players  ·  scan the code to join",
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
    assert "○ away" not in text  # an empty seat has no phone


def test_stale_when_the_hub_does_not_confirm_the_state() -> None:
    text = render_text(_view(live=False, link=LinkState.DOWN, link_detail="Connection refused"))
    assert "STALE" in text
    assert "last known state from" in text
    assert "hub UNREACHABLE, reconnecting: Connection refused" in text
    assert "Alice's turn" in text  # the last known game is still shown


def test_no_game_yet() -> None:
    text = render_text(_view(snapshot=None, live=False, link=LinkState.CONNECTING))
    assert "No game yet: waiting for the hub" in text
    assert "connecting to the hub" in text
    assert "STALE" not in text


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"hub_online": False}, "hub OFFLINE (state service stopped)"),
        ({"hub_online": None}, "hub: waiting for its status"),
        ({"link": LinkState.REFUSED, "link_detail": "Not authorized"}, "refused the login"),
    ],
)
def test_hub_states(changes: dict[str, object], expected: str) -> None:
    assert expected in render_text(_view(**changes))


def test_join_code_and_notice() -> None:
    url = URL + "&code=4711"
    text = render_text(_view(join_code="4711", join_url=url, notice="start refused: why"))
    assert url in text
    assert "code 4711" in text
    assert "start refused: why" in text


def test_a_narrow_console_still_renders() -> None:
    text = render_text(_view(live=False, link=LinkState.DOWN), width=60)
    assert "STALE" in text
    assert all(len(line) <= 60 for line in text.splitlines())


def test_the_qr_code_encodes_the_url() -> None:
    lines = qr_lines(URL)
    code = qrcode.QRCode(border=1, error_correction=ERROR_CORRECT_L)
    code.add_data(URL)
    code.make(fit=True)
    matrix = code.get_matrix()
    assert len(lines) == (len(matrix) + 1) // 2
    assert {len(line) for line in lines} == {len(matrix)}
    # decode the half blocks back into modules: the same matrix
    decoded: list[list[bool]] = []
    for line in lines:
        decoded.append([ch in "█▀" for ch in line])
        decoded.append([ch in "█▄" for ch in line])
    assert decoded[: len(matrix)] == matrix
