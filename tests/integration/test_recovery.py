"""Persistence: restart restores every game exactly; kill -9 loses nothing acknowledged."""

from __future__ import annotations

import json
import random
import threading
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from tests.support.hub import HubProcess, password_of, run_cli
from tests.support.mqtt import TOPICS


def _history(data_dir: Path, game: str = "main") -> list[dict[str, Any]]:
    done = run_cli("history", "--game", game, "--json", "--data-dir", str(data_dir))
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]


def test_restart_restores_state_and_raises_epoch(tmp_path: Path) -> None:
    data_dir = tmp_path / "var"
    with HubProcess(data_dir) as hub, hub.client("alice") as alice:
        with hub.client("bob") as bob:
            alice.send({"type": "join", "name": "Alice"})
            bob.send({"type": "join", "name": "Bob"})
            alice.send({"type": "start", "max_rounds": 3})
            alice.send({"type": "end_turn", "points": 4})
            before = alice.state(min_version=4)
            assert before["epoch"] == 1
        assert hub.stop() == 0

    with HubProcess(data_dir) as hub, hub.client("bob") as bob:
        after = bob.state()
        assert after["epoch"] == 2
        assert {**after, "epoch": 1} == before
        assert bob.send({"type": "end_turn", "points": 2})["version"] == 5
        bob.subscribe(TOPICS.status)
        status = bob.on_topic(TOPICS.status)
        assert status.json()["epoch"] == 2
        assert status.json()["state"] == "online"


class _Streamer:
    """Pipelines ``rename`` commands without waiting, recording every ok reply."""

    def __init__(self, port: int, client_id: str, password: str) -> None:
        self.acked: dict[int, str] = {}  # version -> name
        self.names: dict[str, str] = {}  # request_id -> name
        self._lock = threading.Lock()
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id)
        self.client.on_message = self._on_reply
        self.client.username_pw_set(client_id, password)
        self.topic = TOPICS.game_command("main", client_id)
        self.client.connect("127.0.0.1", port)
        subscribed = threading.Event()
        self.client.on_subscribe = lambda *_a: subscribed.set()
        self.client.subscribe(TOPICS.client_reply(client_id), qos=1)
        self.client.loop_start()
        assert subscribed.wait(10)

    def _on_reply(self, _c: paho.Client, _u: object, msg: paho.MQTTMessage) -> None:
        reply = json.loads(msg.payload)
        if reply["ok"]:
            with self._lock:
                self.acked[reply["version"]] = self.names[reply["request_id"]]

    def send(self, index: int) -> None:
        request_id, name = f"r{index}", f"n{index}"
        with self._lock:
            self.names[request_id] = name
        payload = {"type": "rename", "name": name, "request_id": request_id}
        self.client.publish(self.topic, json.dumps(payload), qos=1)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def test_kill_9_mid_stream_loses_no_acknowledged_command(tmp_path: Path) -> None:
    data_dir = tmp_path / "var"
    rng = random.Random(20261124)
    all_acked: dict[int, str] = {}
    for round_no in range(3):
        with HubProcess(data_dir) as hub:
            if round_no == 0:
                with hub.client("alice") as alice:
                    assert alice.send({"type": "join", "name": "Alice"})["ok"]
            streamer = _Streamer(hub.mqtt_port, "alice", password_of(hub, "alice"))
            kill_after = rng.randint(30, 120)
            deadline = time.monotonic() + 30
            index = 0
            while len(streamer.acked) < kill_after and time.monotonic() < deadline:
                for _ in range(10):
                    streamer.send(round_no * 100_000 + index)
                    index += 1
                time.sleep(0.002)
            hub.kill()  # commands are still in flight
            streamer.close()
            all_acked.update(streamer.acked)
            assert len(streamer.acked) >= kill_after

    history = _history(data_dir)
    versions = [event["version"] for event in history]
    assert versions == list(range(1, len(versions) + 1)), "versions must be gapless"
    by_version = {event["version"]: event.get("name") for event in history}
    lost = {v: n for v, n in all_acked.items() if by_version.get(v) != n}
    assert lost == {}, f"acknowledged but not in the journal: {lost}"

    with HubProcess(data_dir) as hub, hub.client("bob") as bob:
        state = bob.state()
        assert state["version"] == versions[-1]
        assert state["p1_name"] == history[-1]["name"]
        assert state["epoch"] == 4


def test_cli_reads_history_and_state_while_running(hub: HubProcess) -> None:
    with hub.client("alice") as alice:
        alice.send({"type": "join", "name": "Alice"})
        alice.send({"type": "rename", "name": "Alicia"})
        live = alice.state(min_version=2)

    text = run_cli("history", "--game", "main", "--data-dir", str(hub.data_dir))
    assert text.returncode == 0, text.stderr
    lines = text.stdout.splitlines()
    assert len(lines) == 2
    assert "alice" in lines[0]
    assert "join" in lines[0]
    assert "name=Alicia" in lines[1]

    events = _history(hub.data_dir)
    assert [e["type"] for e in events] == ["join", "rename"]

    shown = run_cli("state", "--game", "main", "--data-dir", str(hub.data_dir))
    assert shown.returncode == 0, shown.stderr
    snapshot = json.loads(shown.stdout)
    assert snapshot["version"] == live["version"] == 2
    assert snapshot["p1_name"] == "Alicia"

    missing = run_cli("state", "--game", "nope", "--data-dir", str(hub.data_dir))
    assert missing.returncode == 1
    assert "no game 'nope'" in missing.stderr
