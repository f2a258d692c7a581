"""What an operator relies on, end to end against real hubs: ``/healthz`` turning 503 when
the broker link is down, ``GET /api/info``, ``hub users add --password-stdin``, and a hub
on a topic root other than the default."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from hub.protocol import Topics
from tests.broker.wire import RawClient
from tests.support.http import Http
from tests.support.hub import REPO, HubProcess, password_of
from tests.support.mosquitto import Mosquitto
from tests.support.mqtt import TestClient, refused_login
from tests.support.waiting import wait_until


def test_healthz_turns_503_when_the_link_to_the_broker_is_down(tmp_path: Path) -> None:
    data_dir = tmp_path / "var"
    broker = Mosquitto(data_dir, tmp_path / "mosquitto")
    with broker, HubProcess(data_dir, broker=broker) as hub:
        http = Http(hub)
        status, health = http("GET", "/healthz")
        assert (status, health["ok"], health["broker"]["ok"]) == (200, True, True), health
        broker.__exit__(None, None, None)  # mosquitto stops; the hub's HTTP side stays up

        def unhealthy() -> bool:
            return http("GET", "/healthz")[0] == 503

        wait_until(unhealthy, timeout=30, what="/healthz to answer 503")
        status, health = http("GET", "/healthz")
        assert status == 503
        assert health["ok"] is False
        assert health["broker"] == {"ok": False}
        assert health["disk"]["ok"] is True


def test_api_info_names_the_topic_root_games_and_websocket(data_dir: Path) -> None:
    with HubProcess(data_dir, env={"HUB_GAMES": '["main","den"]'}) as hub:
        status, info = Http(hub)("GET", "/api/info")
    assert status == 200
    assert (info["topic_root"], info["games"], info["ws_path"]) == (
        "tablehub",
        ["main", "den"],
        "/mqtt",
    )


def test_users_add_password_stdin_then_the_player_logs_in_over_mqtt(data_dir: Path) -> None:
    with HubProcess(data_dir) as hub:
        added = subprocess.run(
            [
                *(sys.executable, "-m", "hub", "users", "add", "carol", "--role", "player"),
                *("--password-stdin", "--data-dir", str(data_dir)),
            ],
            cwd=REPO,
            input="carol-secret-42\n",
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert added.returncode == 0, added.stderr
        assert "carol-secret-42" not in added.stdout + added.stderr
        with TestClient(hub.mqtt_port, "carol", password="carol-secret-42") as carol:
            assert carol.send({"type": "join", "name": "Carol"})["ok"] is True
        # the password is the one given
        refused_login(hub.mqtt_port, "carol", password="carol-secret-43")


def test_a_hub_on_another_topic_root_uses_only_that_root(data_dir: Path) -> None:
    topics = Topics("den/tables")
    with HubProcess(data_dir, "--topic-root", topics.root) as hub:
        status, info = Http(hub)("GET", "/api/info")
        assert (status, info["topic_root"]) == (200, "den/tables")
        operator = password_of(hub, "operator")
        watcher = TestClient(
            hub.mqtt_port, "watch", username="operator", password=operator, topics=topics
        )
        with (
            watcher,
            TestClient(
                hub.mqtt_port, "alice", password=password_of(hub, "alice"), topics=topics
            ) as alice,
            TestClient(
                hub.mqtt_port, "bob", password=password_of(hub, "bob"), topics=topics
            ) as bob,
        ):
            watcher.subscribe("#")
            assert alice.send({"type": "join", "name": "Alice"})["ok"] is True
            assert bob.send({"type": "join", "name": "Bob"})["ok"] is True
            assert alice.send({"type": "start", "max_rounds": 1})["ok"] is True
            turn = alice.send({"type": "end_turn", "points": 2})
            assert turn["ok"] is True, turn
            assert alice.send({"type": "end_turn"})["error"]["code"] == "not_your_turn"
            assert bob.state(min_version=4)["version"] == 4  # read on the new root
            # the ACL follows the root: alice may not fake the state there, nor use the old root
            alice.publish(topics.game_state("main"), b'{"fake":true}', retain=True)
            alice.publish("tablehub/games/main/cmd/alice", {"type": "pause"})
            raw = RawClient(hub.mqtt_port)
            try:
                raw.connect("alice", username="alice", password=password_of(hub, "alice"))
                assert raw.subscribe(("tablehub/#", 1), (f"{topics.root}/#", 1)) == [0x80, 1]
            finally:
                raw.close()
            marker = alice.send({"type": "pause"})  # after both denied publishes
            assert marker["ok"] is True
            watcher.wait_for(
                lambda m: (
                    m.topic == topics.client_reply("alice")
                    and m.json().get("request_id") == marker["request_id"]
                )
            )
            seen = [m.topic for m in watcher.messages]
        log = hub.log_text()
    assert f"dropped publish by alice to {topics.game_state('main')}" in log
    assert "dropped publish by alice to tablehub/games/main/cmd/alice" in log
    assert topics.status in seen
    assert topics.game_state("main") in seen
    assert [t for t in seen if t.startswith("tablehub/")] == []
