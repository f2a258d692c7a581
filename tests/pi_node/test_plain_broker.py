"""The node on a broker without ACLs, where a test may publish anything anywhere: garbage is
logged and ignored, and the join code (when the hub publishes one) reaches the screen."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from hub.protocol import Status, encode
from pi_node.wire import join_topic
from tests.pi_node.conftest import RunningNode, node_settings, snapshot
from tests.support.mosquitto import PlainMosquitto
from tests.support.mqtt import TOPICS, TestClient
from tests.support.waiting import wait_until


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[PlainMosquitto]:
    with PlainMosquitto(tmp_path / "mosquitto") as running:
        yield running


@pytest.fixture
def publisher(broker: PlainMosquitto) -> Iterator[TestClient]:
    with TestClient(broker.port, "fake-hub") as client:
        yield client


def test_garbage_is_logged_and_ignored(
    broker: PlainMosquitto,
    publisher: TestClient,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    state = TOPICS.game_state("main")
    publisher.publish(state, encode(snapshot(version=17)), retain=True)
    status = Status.model_validate(
        {"state": "online", "epoch": 3, "version": "0.1.0", "started_at": "2026-11-24T08:00:00Z"}
    )
    publisher.publish(TOPICS.status, encode(status), retain=True)
    caplog.set_level("WARNING", logger="pi_node")
    with RunningNode(node_settings(broker.port, "anything", tmp_path)) as node:
        screen = node.screen
        screen.wait_text("ALICE'S TURN", "version 17", "hub online (epoch 3)")

        garbage = [
            (state, b"\xff\xfe not utf-8"),
            (state, b"not json"),
            (state, b'{"schema": 1}'),
            (state, b"[1, 2]"),
            (state, b""),
            (TOPICS.status, b'{"state": "sideways"}'),
            (TOPICS.game_events("main"), b"{}"),
            (join_topic(TOPICS, "main"), b'{"code": "no spaces allowed"}'),
        ]
        for topic, payload in garbage:
            publisher.publish(topic, payload)
        wait_until(
            lambda: caplog.text.count("ignoring a malformed message") >= len(garbage),
            what="a warning per malformed message",
        )
        assert f"ignoring a malformed message on {state}" in caplog.text
        assert "Traceback" not in caplog.text

        # still running, still showing the last good state, and taking the next one
        assert "version 17" in screen.text()
        assert "hub online (epoch 3)" in screen.text()
        publisher.publish(state, encode(snapshot(version=18, current_player_id=2)), retain=True)
        screen.wait_text("BOB'S TURN", "version 18")


def test_the_join_code_shows_in_the_join_url(
    broker: PlainMosquitto, publisher: TestClient, tmp_path: Path
) -> None:
    publisher.publish(TOPICS.game_state("main"), encode(snapshot()), retain=True)
    with RunningNode(node_settings(broker.port, "anything", tmp_path)) as node:
        node.screen.wait_text("no join code yet", "http://127.0.0.1:8080/?game=main")
        publisher.publish(
            join_topic(TOPICS, "main"), b'{"game": "main", "code": "4711"}', retain=True
        )
        node.screen.wait_text("4 7 1 1", "http://127.0.0.1:8080/?game=main&code=4711")
        publisher.publish(join_topic(TOPICS, "main"), b"", retain=True)  # cleared
        node.screen.wait_text("no join code yet", absent=("4711",))
