"""A command counts when it is sent, never again: retained commands across a hub restart.

The attack (issue 18): ``mosquitto_pub -r`` of ``end_turn`` with 1000 points as alice; at
every start the state service subscribes to the command topics, the broker replays the
retained message, and alice scored again. The embedded broker refuses the retained
publish outright; on Mosquitto (whose ACL cannot refuse the retain flag) it is applied
once, live, and the service ignores and clears the replayed copy.
"""

from __future__ import annotations

import time
from pathlib import Path

from tests.support.hub import HubProcess
from tests.support.mqtt import TOPICS


def _scores(state: dict[str, object]) -> list[int]:
    players = state["players"]
    assert isinstance(players, list)
    return [int(player["score"]) for player in players]


def test_a_retained_command_is_never_replayed(hub: HubProcess) -> None:
    embedded = hub.broker is None
    with hub.client("alice") as alice, hub.client("bob") as bob:
        alice.send({"type": "join", "name": "Alice"})
        bob.send({"type": "join", "name": "Bob"})
        alice.send({"type": "start", "max_rounds": 3})
        alice.publish(
            TOPICS.game_command("main", "alice"),
            {"type": "end_turn", "points": 1000, "request_id": "replayed"},
            retain=True,
        )
        alice.publish(  # under a game the hub does not run: stored all the same
            TOPICS.game_command("nogame", "alice"), b"x" * 1000, retain=True
        )
        # the connection was kept, and alice's later commands are served in order
        assert alice.send({"type": "rename", "name": "Alice"})["ok"]
        if not embedded:  # applied once, when sent; now it is alice's turn again
            assert bob.send({"type": "end_turn", "points": 0})["ok"]
        before = alice.state()
        assert _scores(before) == ([0, 0] if embedded else [1000, 0])
        assert before["current_player_id"] == 1

    hub.stop()
    hub.start()  # Mosquitto keeps its retained messages; the service subscribes again
    with hub.client("alice") as alice, hub.client("operator", role="operator") as operator:
        after = alice.state()
        assert after["version"] == before["version"]
        assert _scores(after) == _scores(before)
        # the service took the replayed messages before this command (one queue, in order)
        assert alice.send({"type": "rename", "name": "Alice"})["version"] == after["version"] + 1
        operator.subscribe(TOPICS.command_filter)
        alice.publish(TOPICS.game_command("main", "alice"), {"type": "pause"})
        operator.wait_for(lambda m: not m.retain and b"pause" in m.payload)
        # nothing retained is left on a command topic (an empty payload clears)
        assert not [m for m in operator.messages if m.retain and m.payload]
        time.sleep(0.5)  # a replayed command would have been answered by now
        replies = [m.json() for m in alice.messages if m.topic == TOPICS.client_reply("alice")]
        assert all(reply.get("request_id") != "replayed" for reply in replies)
        assert _scores(alice.state()) == _scores(before)
    log = hub.log_text()
    if embedded:
        assert "dropped retained publish by alice to tablehub/games/main/cmd/alice" in log
    else:
        assert "ignored a retained command on tablehub/games/main/cmd/alice" in log


def test_a_retained_will_on_a_command_topic_is_dropped(data_dir: Path) -> None:
    """A will is a publish too: retained on a command topic, the embedded broker drops it."""
    with HubProcess(data_dir) as hub, hub.client("watcher") as watcher:
        version = watcher.state()["version"]
        mallory = hub.client("mallory")
        mallory._client.will_set(
            TOPICS.game_command("main", "mallory"),
            b'{"type": "join", "name": "Will"}',
            qos=1,
            retain=True,
        )
        mallory.__enter__()
        mallory.drop()  # without DISCONNECT: the will is due
        deadline = time.monotonic() + 20
        while "dropping the will of mallory" not in hub.log_text():
            assert time.monotonic() < deadline, "the will was not dropped"
            time.sleep(0.05)
        assert watcher.send({"type": "rename", "name": "x"})["error"]["code"] == "not_seated"
        assert watcher.state()["version"] == version
