"""A whole game through the real hub, over real MQTT."""

from __future__ import annotations

from pathlib import Path

from tests.integration.conftest import ClientFactory
from tests.support.hub import HubProcess
from tests.support.mqtt import TOPICS


def test_full_game_from_join_to_finished(hub: HubProcess, connect: ClientFactory) -> None:
    alice, bob, watcher = connect("alice"), connect("bob"), connect("watcher")
    watcher.subscribe(TOPICS.game_events("main"))
    assert watcher.state()["version"] == 0

    assert alice.send({"type": "join", "name": "  Alice "}) == {
        "request_id": alice.messages[-1].json()["request_id"],
        "ok": True,
        "version": 1,
    }
    assert bob.send({"type": "join", "name": "Bob"})["version"] == 2
    assert alice.send({"type": "start", "max_rounds": 2})["ok"]

    script = [(alice, 3), (bob, 4), (alice, 0), (bob, 10)]
    for player, points in script:
        reply = player.send({"type": "end_turn", "points": points})
        assert reply["ok"], reply

    final = watcher.state(min_version=7)
    assert final["version"] == 7
    assert final["status"] == "finished"
    assert (final["p1_name"], final["p2_name"]) == ("Alice", "Bob")
    assert [p["score"] for p in final["players"]] == [3, 14]
    assert [p["client_id"] for p in final["players"]] == ["alice", "bob"]
    assert final["winner_id"] == 2
    assert final["current_round"] == 2
    assert final["max_rounds"] == 2
    assert final["schema"] == 1
    assert final["epoch"] == 1

    watcher.wait_for(lambda m: m.topic.endswith("/events") and m.json()["version"] == 7)
    events = [m.json() for m in watcher.messages if m.topic == TOPICS.game_events("main")]
    assert [e["version"] for e in events] == list(range(1, 8))
    assert [e["type"] for e in events] == ["join", "join", "start"] + ["end_turn"] * 4
    assert events[-1]["by"] == "bob"
    assert events[-1]["points"] == 10
    assert events[-1]["status"] == "finished"
    assert all(e["game"] == "main" and e["at"].endswith("Z") for e in events)


def test_tie_has_no_winner(hub: HubProcess, connect: ClientFactory) -> None:
    alice, bob = connect("alice"), connect("bob")
    alice.send({"type": "join", "name": "A"})
    bob.send({"type": "join", "name": "B"})
    alice.send({"type": "start", "max_rounds": 1})
    alice.send({"type": "end_turn", "points": 5})
    assert bob.send({"type": "end_turn", "points": 5})["version"] == 5
    final = alice.state(min_version=5)
    assert final["status"] == "finished"
    assert final["winner_id"] is None


def test_games_run_side_by_side(tmp_path: Path) -> None:
    with (
        HubProcess(tmp_path / "var", env={"HUB_GAMES": '["main","side"]'}) as hub,
        hub.client("alice") as alice,
    ):
        assert alice.send({"type": "join", "name": "A"}, game="side")["version"] == 1
        assert alice.state("side")["p1_name"] == "A"
        assert alice.state("main")["p1_name"] is None
        assert alice.state("main")["version"] == 0


def test_undo_restores_previous_state_as_new_version(
    hub: HubProcess, connect: ClientFactory
) -> None:
    alice, bob, operator = connect("alice"), connect("bob"), connect("operator")
    alice.send({"type": "join", "name": "A"})
    bob.send({"type": "join", "name": "B"})
    alice.send({"type": "start"})
    alice.send({"type": "end_turn", "points": 7})
    before = operator.state(min_version=4)
    assert before["players"][0]["score"] == 7

    reply = operator.send({"type": "undo"})
    assert reply == {"request_id": reply["request_id"], "ok": True, "version": 5}
    undone = operator.state(min_version=5)
    assert undone["players"][0]["score"] == 0
    assert undone["current_player_id"] == 1
    assert undone["status"] == "in_progress"

    operator.send({"type": "undo"})  # and the start before it
    assert operator.state(min_version=6)["status"] == "not_started"
    assert alice.send({"type": "undo"})["error"]["code"] == "forbidden"
