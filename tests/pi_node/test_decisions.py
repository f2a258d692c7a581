"""The node's pure decisions: which command a button sends, which LEDs light, how long to
wait before reconnecting."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hub.protocol import GameStatus, decode_command, encode
from pi_node.hardware import ButtonAction, Light
from pi_node.link import Backoff
from pi_node.node import command_for, turn_lights
from tests.pi_node.conftest import snapshot

START, PAUSE = ButtonAction.START_NEXT, ButtonAction.PAUSE


@pytest.mark.parametrize(
    ("action", "status", "expected"),
    [
        (START, "not_started", "start"),
        (START, "finished", "start"),
        (START, "paused", "resume"),
        (START, "in_progress", None),
        (PAUSE, "in_progress", "pause"),
        (PAUSE, "paused", None),
        (PAUSE, "not_started", None),
        (PAUSE, "finished", None),
    ],
)
def test_command_for(action: ButtonAction, status: str, expected: str | None) -> None:
    command = command_for(action, snapshot(status=status, version=9), "r1")
    if expected is None:
        assert command is None
        return
    assert command is not None
    assert command.type == expected
    assert command.expected_version == 9  # a press on an outdated screen is refused
    assert command.request_id == "r1"
    assert decode_command(encode(command)) == command  # valid on the wire


@pytest.mark.parametrize(
    ("status", "seat", "expected"),
    [
        ("in_progress", 1, (Light.ON, Light.OFF)),
        ("in_progress", 2, (Light.OFF, Light.ON)),
        ("paused", 1, (Light.BLINK, Light.OFF)),
        ("paused", 2, (Light.OFF, Light.BLINK)),
        ("not_started", 1, (Light.OFF, Light.OFF)),
        ("finished", 2, (Light.OFF, Light.OFF)),
    ],
)
def test_turn_lights(status: str, seat: int, expected: tuple[Light, Light]) -> None:
    state = snapshot(status=status, current_player_id=seat)
    assert turn_lights(state, live=True) == expected


@pytest.mark.parametrize("status", list(GameStatus))
def test_no_lights_for_a_state_the_hub_has_not_confirmed(status: GameStatus) -> None:
    assert turn_lights(snapshot(status=status.value), live=False) == (Light.OFF, Light.OFF)
    assert turn_lights(None, live=True) == (Light.OFF, Light.OFF)


# no deadline: Hypothesis' default (200 ms an example) is a speed assertion, which a
# preempted worker on a busy machine can miss ("Unreliable test timings")
@settings(deadline=None)
@given(attempt=st.integers(min_value=0, max_value=10_000), rand=st.floats(0, 1))
def test_backoff_is_capped_and_jittered(attempt: int, rand: float) -> None:
    backoff = Backoff(initial=0.5, cap=30.0)
    ceiling = min(30.0, 0.5 * 2 ** min(attempt, 32))
    delay = backoff.delay(attempt, lambda: rand)
    assert ceiling / 2 <= delay <= ceiling <= 30.0


def test_backoff_grows_then_stays_at_the_cap() -> None:
    backoff = Backoff(initial=0.5, cap=30.0)
    highest = [backoff.delay(n, lambda: 1.0) for n in range(10)]
    assert highest == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0, 30.0]
    lowest = [backoff.delay(n, lambda: 0.0) for n in range(3)]
    assert lowest == [0.25, 0.5, 1.0]
