"""The Pi node against a real hub on free ports: the screen follows the game, the buttons
send accepted commands, the LEDs follow the turn, and it rides out a hub restart."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest

from tests.pi_node.conftest import (
    MockTable,
    RunningNode,
    add_display_user,
    node_settings,
)
from tests.support.hub import HubProcess, run_cli
from tests.support.mosquitto import dead_port
from tests.support.mqtt import TOPICS
from tests.support.waiting import wait_until


def _history(data_dir: Path) -> list[dict[str, object]]:
    done = run_cli("history", "--json", "--data-dir", str(data_dir))
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]


def test_screen_buttons_and_leds_follow_the_game(
    tmp_path: Path, table: MockTable, caplog: pytest.LogCaptureFixture
) -> None:
    data_dir = tmp_path / "var"
    with HubProcess(data_dir) as hub:
        password = add_display_user(data_dir)
        settings = node_settings(hub.mqtt_port, password, tmp_path)
        with (
            RunningNode(settings, table.hardware) as node,
            hub.client("alice", presence=True) as alice,
            hub.client("bob", presence=True) as bob,
        ):
            screen = node.screen
            screen.wait_text("Waiting for players", "hub online (epoch 1)")
            assert table.leds() == (False, False)

            assert alice.send({"type": "join", "name": "Alice"})["ok"]
            assert bob.send({"type": "join", "name": "Bob"})["ok"]
            text = screen.wait_text("Ready", "Alice", "Bob", absent=("x away",))
            assert text.count("● connected") == 2
            assert "http://127.0.0.1:8080/?game=main" in text

            # "start/next" on a game that has not started: start
            table.press_start()
            text = screen.wait_text("round 1 of 5", "ALICE'S TURN")
            assert alice.state(min_version=3)["status"] == "in_progress"
            assert table.leds() == (True, False)

            assert alice.send({"type": "end_turn", "points": 4})["ok"]
            screen.wait_text("BOB'S TURN")
            wait_until(lambda: table.leds() == (False, True), what="seat 2's LED")

            # "start/next" while in progress: nothing to send
            caplog.set_level("INFO", logger="pi_node")
            table.press_start()
            wait_until(lambda: "nothing to do while in_progress" in caplog.text, what="the log")

            # "pause" while in progress: pause; then "start/next": resume
            table.press_pause()
            screen.wait_text("PAUSED", "press START to resume")
            assert alice.state(min_version=5)["status"] == "paused"
            # (a press waits for the reply to the one before: no double sends)
            wait_until(lambda: "pause accepted" in caplog.text, what="the reply to pause")
            table.press_start()
            screen.wait_text("round 1 of 5", "BOB'S TURN")
            assert alice.state(min_version=6)["status"] == "in_progress"

            # a player disconnecting shows on the screen
            alice.drop()
            screen.wait_text("x away")

    commands = [(e["type"], e["by"]) for e in _history(data_dir)]
    assert commands == [
        ("join", "alice"),
        ("join", "bob"),
        ("start", "pi"),
        ("end_turn", "alice"),
        ("pause", "pi"),
        ("resume", "pi"),
    ]


def test_rides_out_a_hub_restart_and_starts_from_the_cache(tmp_path: Path) -> None:
    data_dir = tmp_path / "var"
    with HubProcess(data_dir) as hub:  # on port 0: it reports the port it got
        port = hub.mqtt_port
        fixed = ("--mqtt-port", str(port))  # later options win: restarts keep the port
        password = add_display_user(data_dir)
        settings = node_settings(port, password, tmp_path)
        with RunningNode(settings) as node, hub.client("alice") as alice:
            screen = node.screen
            assert alice.send({"type": "join", "name": "Alice"})["ok"]
            screen.wait_text("Alice", "hub online (epoch 1)", "version 1")

            hub.kill()
            text = screen.wait_text("UNREACHABLE", "NOT LIVE")
            assert "Alice" in text  # the last known game stays on the screen

            with HubProcess(data_dir, *fixed) as again, again.client("bob") as bob:
                screen.wait_text("hub online (epoch 2)", "Alice", absent=("NOT LIVE",))
                assert bob.send({"type": "join", "name": "Bob"})["ok"]
                screen.wait_text("Bob", "version 2", absent=("NOT LIVE",))
    # the hub is down now: a node started now shows the cached game, marked stale
    with RunningNode(settings) as node:
        text = node.screen.wait_text("NOT LIVE", "Alice", "Bob", "version 2")
        assert "hub UNREACHABLE" in text or "connecting" in text
        with HubProcess(data_dir, *fixed):
            node.screen.wait_text("hub online (epoch 3)", "Alice", "Bob", absent=("NOT LIVE",))


def test_button_presses_while_the_hub_is_away_are_not_sent(
    tmp_path: Path, table: MockTable
) -> None:
    with dead_port() as port:  # held for the test: nothing can listen there meanwhile
        settings = node_settings(port, "no-hub-here", tmp_path)
        with RunningNode(settings, table.hardware) as node:
            node.screen.wait_text("hub UNREACHABLE")
            table.press_start()
            node.screen.wait_text("the hub is not reachable: button ignored")


def test_presence_is_online_while_the_node_runs(tmp_path: Path) -> None:
    data_dir = tmp_path / "var"
    with HubProcess(data_dir) as hub:
        password = add_display_user(data_dir)
        with hub.client("operator") as watcher:
            watcher.subscribe(TOPICS.client_presence("pi"))
            with RunningNode(node_settings(hub.mqtt_port, password, tmp_path)) as node:
                node.screen.wait_text("hub online")
                watcher.wait_for(lambda m: m.json() == {"state": "online"})
                mark = len(watcher.messages)
            watcher.wait_for(lambda m: m.json() == {"state": "offline"}, after=mark)


def test_two_nodes_logged_in_as_one_user_say_so(tmp_path: Path) -> None:
    """The hub closes the older connection of a client id each time the other logs in."""
    data_dir = tmp_path / "var"
    with HubProcess(data_dir) as hub:
        password = add_display_user(data_dir)
        first = node_settings(hub.mqtt_port, password, tmp_path / "a")
        second = node_settings(hub.mqtt_port, password, tmp_path / "b")
        with RunningNode(first) as one, RunningNode(second) as two:
            shown = "another pi-node is logged in as pi"
            one.screen.wait_text(shown, timeout=30)
            two.screen.wait_text(shown, timeout=30)
            assert "Unspecified error" not in one.screen.text()


def test_an_unanswered_press_is_sent_again_and_applied_once(
    tmp_path: Path, table: MockTable, caplog: pytest.LogCaptureFixture
) -> None:
    """The hub (broker and all) is stopped when the button is pressed: no reply comes, the
    node sends the same command again and says so; once the hub runs again both copies
    reach it, and the game is paused once."""
    caplog.set_level("INFO", logger="pi_node")
    data_dir = tmp_path / "var"
    with HubProcess(data_dir) as hub:
        password = add_display_user(data_dir)
        settings = node_settings(hub.mqtt_port, password, tmp_path)
        with (
            RunningNode(settings, table.hardware) as node,
            hub.client("alice") as alice,
            hub.client("bob") as bob,
        ):
            assert alice.send({"type": "join", "name": "Alice"})["ok"]
            assert bob.send({"type": "join", "name": "Bob"})["ok"]
            assert alice.send({"type": "start"})["version"] == 3
            node.screen.wait_text("round 1 of 5", "ALICE'S TURN")
            hub.signal(signal.SIGSTOP)
            try:
                table.press_pause()
                node.screen.wait_text("sending pause again...", timeout=30)
            finally:
                hub.signal(signal.SIGCONT)
            node.screen.wait_text("PAUSED", timeout=30)
            wait_until(lambda: "pause accepted (version 4)" in caplog.text, what="the reply")
            sent = [r.getMessage() for r in caplog.records if "sending it again" in r.getMessage()]
            assert sent, caplog.text
            assert alice.send({"type": "resume"})["version"] == 5  # nothing came in between
    assert [(e["type"], e["by"]) for e in _history(data_dir)][3:] == [
        ("pause", "pi"),
        ("resume", "alice"),
    ]
