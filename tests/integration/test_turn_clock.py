"""The turn clock through a real hub: it runs out, is journaled, pauses, survives a restart.

The shortest clock the contract allows is 5 s, so this test takes about 20 s; every wait
is on a condition (a message, or the wall clock passing a deadline) with room to spare.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from tests.support.hub import HubProcess, run_cli
from tests.support.mqtt import TOPICS, Message, TestClient

SECONDS = 5
EVENTS = TOPICS.game_events("main")


def _time(wire: str) -> datetime:
    return datetime.fromisoformat(wire)


def _wait_until(moment: datetime) -> None:
    """Sleep until the wall clock is past ``moment`` (what the hub's timer waits for)."""
    while (left := (moment - datetime.now(UTC)).total_seconds()) > -0.2:
        time.sleep(max(left, 0.05))


def _timeout_event(client: TestClient, version: int) -> dict[str, Any]:
    def timed_out(m: Message) -> bool:
        return m.topic == EVENTS and m.json()["version"] == version

    event: dict[str, Any] = client.wait_for(timed_out, timeout=SECONDS + 30).json()
    assert event["type"] == "turn_timeout", event
    return event


def _history(data_dir: Path) -> list[dict[str, Any]]:
    done = run_cli("history", "--json", "--data-dir", str(data_dir))
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]


def test_the_clock_runs_out_pauses_and_survives_a_restart(tmp_path: Path) -> None:
    data_dir = tmp_path / "var"
    configured = {"HUB_DEFAULT_TURN_SECONDS": str(SECONDS)}
    with HubProcess(data_dir, env=configured) as hub, hub.client("alice") as alice:
        with hub.client("bob") as bob:
            alice.subscribe(EVENTS)
            alice.send({"type": "join", "name": "Alice"})
            bob.send({"type": "join", "name": "Bob"})
            assert alice.send({"type": "start", "max_rounds": 2})["ok"]  # the default clock
            started = alice.state(min_version=3)
            assert started["turn_seconds"] == SECONDS
            deadline = _time(started["turn_deadline"])
            assert deadline == _time(started["updated_at"]) + timedelta(seconds=SECONDS)

            # Alice does nothing: the hub ends her turn with 0 points.
            event = _timeout_event(alice, 4)
            assert datetime.now(UTC) >= deadline
            assert {k: event[k] for k in ("by", "seat", "points", "status")} == {
                "by": "hub",
                "seat": 1,
                "points": 0,
                "status": "in_progress",
            }
            assert _time(event["at"]) >= deadline
            bobs_turn = alice.state(min_version=4)
            assert (bobs_turn["current_player_id"], bobs_turn["current_round"]) == (2, 1)
            assert [p["score"] for p in bobs_turn["players"]] == [0, 0]
            assert _time(bobs_turn["turn_deadline"]) == _time(event["at"]) + timedelta(
                seconds=SECONDS
            )

            # Paused, the clock stops: no timeout however long the break.
            assert bob.send({"type": "pause"})["ok"]
            paused = alice.state(min_version=5)
            left = paused["turn_remaining_ms"]
            assert paused["turn_deadline"] is None
            assert 0 < left <= SECONDS * 1000
            _wait_until(_time(bobs_turn["turn_deadline"]) + timedelta(seconds=1))
            assert alice.state()["version"] == 5
            assert alice.send({"type": "resume"})["ok"]
            resumed = alice.state(min_version=6)
            assert resumed["turn_remaining_ms"] is None
            assert _time(resumed["turn_deadline"]) == _time(resumed["updated_at"]) + timedelta(
                milliseconds=left
            )
        assert hub.stop() == 0

    # Bob's deadline passes while the hub is down: it fires as soon as the hub is back,
    # from the journal alone (this hub has no default clock configured).
    _wait_until(_time(resumed["turn_deadline"]))
    with HubProcess(data_dir) as hub, hub.client("alice") as alice:
        alice.subscribe(EVENTS)
        after = alice.state(min_version=7, timeout=SECONDS + 30)
        assert after["epoch"] == 2
        assert (after["current_player_id"], after["current_round"]) == (1, 2)
        assert after["turn_seconds"] == SECONDS
        assert after["turn_deadline"] is not None
        assert hub.stop() == 0

    history = _history(data_dir)
    assert [e["type"] for e in history] == [
        "join",
        "join",
        "start",
        "turn_timeout",
        "pause",
        "resume",
        "turn_timeout",
    ]
    assert history[2]["turn_seconds"] == SECONDS
    assert [(e["by"], e["seat"]) for e in history if e["type"] == "turn_timeout"] == [
        ("hub", 1),
        ("hub", 2),
    ]
