"""A whole game on a 3-node NATS cluster, and kill -9 of the node the service is on.

The service is attached to node 1 (the first node of its URL), a player (a user) to node 2,
a phone (a session minted by the hub's web bridge, MQTT over WebSocket) to node 3. After
node 1 dies, the service fails over to another node by itself, the players' connections
are untouched, the game goes on, and the retained state is readable on every node left.
The callout's refusals hold on every node.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest

from tests.support.http import Http
from tests.support.hub import HubProcess, password_of
from tests.support.mqtt import TOPICS, LoginRefusedError, TestClient
from tests.support.nats import NatsCluster, nats_server

pytestmark = pytest.mark.skipif(nats_server() is None, reason="nats-server is missing")


def _granted(client: TestClient, topic_filter: str) -> bool:
    codes: list[int] = []
    done = threading.Event()

    def on_subscribe(*args: object) -> None:
        codes.extend(int(getattr(code, "value", code)) for code in args[3])  # type: ignore[attr-defined]
        done.set()

    raw: paho.Client = client._client
    raw.on_subscribe = on_subscribe
    raw.subscribe(topic_filter, 1)
    assert done.wait(10), f"no SUBACK for {topic_filter}"
    return codes[0] < 0x80


def _answered(client: TestClient, deadline: float) -> float:
    """Send a harmless command until the service answers it; returns when it did. A client
    that lost its node meanwhile (NATS may drop clients of the other nodes while JetStream
    re-elects leaders) is back by itself, but its reply subscription may have been refused
    (SUBACK 0x80): asked again."""
    while True:
        try:
            reply = client.send({"type": "teleport"}, timeout=2)
        except TimeoutError:
            assert time.monotonic() < deadline, "the service did not come back"
            _granted(client, TOPICS.client_reply(client.client_id))
            continue
        assert reply["error"]["code"] == "unknown_command"
        return time.monotonic()


def _retained_state(port: int, name: str, password: str, deadline: float) -> dict[str, Any]:
    """The retained state of version 7, read by a new client on ``port``. A NATS node
    refuses QoS 1 subscriptions (SUBACK 0x80) until JetStream has a leader for its MQTT
    streams again: asked again until ``deadline``."""
    while True:
        with TestClient(port, name, password=password) as viewer:
            if _granted(viewer, TOPICS.game_state("main")):
                try:
                    message = viewer.wait_for(lambda m: m.topic == TOPICS.game_state("main"), 5)
                except TimeoutError:
                    pass
                else:
                    state: dict[str, Any] = message.json()
                    assert state["version"] <= 7, state  # nothing after the last turn
                    if state["version"] == 7:
                        assert message.retain
                        return state
        assert time.monotonic() < deadline, f"no retained state on port {port}"
        time.sleep(0.5)


@pytest.mark.timeout(240)
def test_a_game_goes_on_when_the_services_node_is_killed(tmp_path: Path) -> None:
    data_dir = tmp_path / "var"
    with (
        NatsCluster(tmp_path / "nats", nodes=3) as cluster,
        HubProcess(data_dir, "--command-rate-limit", "0", broker=cluster) as hub,
    ):
        node1, node2, node3 = (cluster.mqtt_port(k) for k in range(3))
        assert f"at 127.0.0.1:{node1}" in hub.log_text()  # the service is on node 1
        alice = TestClient(node2, "alice", password=password_of(hub, "alice"))
        phone = Http(hub).session("Bob")  # a phone's session, minted by the hub's bridge
        bob = TestClient(
            cluster.websocket_port(2),
            phone["client_id"],
            password=phone["token"],
            websocket_path="/mqtt",
        )
        with alice, bob:
            assert alice.send({"type": "join", "name": "Alice"})["ok"]
            assert bob.send({"type": "join", "name": "Bob"})["ok"]
            assert alice.send({"type": "start", "max_rounds": 2})["ok"]
            assert alice.send({"type": "end_turn", "points": 3})["ok"]
            assert bob.send({"type": "end_turn", "points": 4})["version"] == 5

            killed = time.monotonic()
            cluster.kill(0)
            back = _answered(alice, killed + 90)
            print(f"service answering again {back - killed:.2f} s after kill -9 of its node")
            _answered(bob, killed + 90)
            assert "lost the broker" in hub.log_text()
            dropped = [c.client_id for c in (alice, bob) if c.disconnected.is_set()]
            print(f"clients of the other nodes that lost their connection: {dropped}")

            assert alice.send({"type": "end_turn", "points": 0}, timeout=20)["version"] == 6
            assert bob.send({"type": "end_turn", "points": 10}, timeout=20)["version"] == 7

            for port, name in ((node2, "viewer2"), (node3, "viewer3")):
                final = _retained_state(port, name, password_of(hub, name), killed + 90)
                assert final["status"] == "finished"
                assert [p["score"] for p in final["players"]] == [3, 14]
            print(f"retained state on both nodes left {time.monotonic() - killed:.2f} s after")

            wrong = TestClient(node3, "alice", password="wrong-password")
            with pytest.raises(LoginRefusedError), wrong:
                pass
            forged = TestClient(node2, phone["client_id"], password=phone["token"][:-2] + "xx")
            with pytest.raises(LoginRefusedError), forged:
                pass
            other_id = TestClient(
                node2, "alice-2", username="alice", password=password_of(hub, "alice")
            )
            with pytest.raises(LoginRefusedError), other_id:  # client id = username
                pass
            assert not _granted(alice, TOPICS.client_reply(bob.client_id))
            spoof = {"type": "rename", "name": "Mallory"}  # accepted, were it bob's
            alice.publish(TOPICS.game_command("main", bob.client_id), spoof)  # dropped
            assert alice.send({"type": "teleport"})["error"]["code"] == "unknown_command"
            # had the spoof been applied, the retained state would be version 8
            viewer = ("viewer4", password_of(hub, "viewer4"))
            assert _retained_state(node2, *viewer, time.monotonic() + 60)["version"] == 7
