"""What the operator sees: mosquitto_sub, the ready line, SIGTERM, presence, stats."""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import urllib.request
from pathlib import Path

import pytest

from tests.integration.conftest import ClientFactory
from tests.support.hub import HubProcess, denied_publish_logged, password_of, run_cli
from tests.support.mqtt import TOPICS
from tests.support.waiting import wait_until


def _mosquitto(
    tool: str, port: int, user: str, password: str, *args: str, client_id: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run Debian's mosquitto_sub/_pub as ``user``; no ``-i`` unless ``client_id`` is given."""
    path = shutil.which(tool)
    assert path is not None, f"{tool} is missing: make test installs mosquitto-clients"
    identity = ["-i", client_id] if client_id else []
    return subprocess.run(
        [path, "-h", "127.0.0.1", "-p", str(port), *identity, "-u", user, "-P", password, *args],
        capture_output=True,
        text=True,
        timeout=20,
        check=False,
    )


def test_mosquitto_sub_shows_retained_status_and_state_at_once(
    hub: HubProcess, connect: ClientFactory
) -> None:
    connect("alice").send({"type": "join", "name": "Alice"})
    done = _mosquitto(
        "mosquitto_sub",
        hub.mqtt_port,
        "operator",
        password_of(hub, "operator"),
        "-t",
        "tablehub/#",
        "-v",
        "-F",
        "%r %t %p",
        "-C",
        "4",
        "-W",
        "10",
    )
    assert done.returncode == 0, done.stderr
    lines = {}
    for line in done.stdout.splitlines():
        retained, topic, payload = line.split(" ", 2)
        lines[topic] = (retained, json.loads(payload))
    assert set(lines) == {
        TOPICS.status,
        TOPICS.game_state("main"),
        TOPICS.stats,
        TOPICS.game_join("main"),
    }
    assert all(retained == "1" for retained, _ in lines.values())
    assert lines[TOPICS.status][1]["state"] == "online"
    assert lines[TOPICS.game_state("main")][1]["p1_name"] == "Alice"


def test_display_user_reads_everything_public_but_cannot_publish_state(
    hub: HubProcess, connect: ClientFactory
) -> None:
    # the operator's steps from the issue, literally: no -i, the broker assigns "pi"
    added = run_cli("users", "add", "pi", "--role", "display", *hub.store_args)
    assert added.returncode == 0, added.stderr
    password = added.stdout.split("password: ", 1)[1].strip()
    if hub.broker is not None:  # the operator's step with Mosquitto: re-export, SIGHUP
        hub.broker.reload("pi", password)
    # wider than a display may read: granted, deliveries checked; NATS cannot check per
    # message (it refuses the filter) nor assign the username as client id (docs/protocol.md)
    readable = (TOPICS.status, TOPICS.stats, TOPICS.game_state("+"), TOPICS.game_join("+"))
    nats = [arg for topic in readable for arg in ("-t", topic)]
    client_id = "pi" if hub.engine == "nats" else None
    shown = _mosquitto(
        "mosquitto_sub",
        hub.mqtt_port,
        "pi",
        password,
        *(nats if hub.engine == "nats" else ["-t", "tablehub/#"]),
        "-v",
        "-C",
        "4",
        "-W",
        "10",
        client_id=client_id,
    )
    assert shown.returncode == 0, shown.stderr
    seen = dict(line.split(" ", 1) for line in shown.stdout.splitlines())
    assert set(seen) == {
        TOPICS.status,
        TOPICS.stats,
        TOPICS.game_state("main"),
        TOPICS.game_join("main"),  # displays read the join code
    }
    state = json.loads(seen[TOPICS.game_state("main")])
    assert state["version"] == 0

    fake = json.dumps({**state, "p1_name": "Mallory"})
    for extra in ([], ["-r"]):
        pub = _mosquitto(
            "mosquitto_pub",
            hub.mqtt_port,
            "pi",
            password,
            "-t",
            TOPICS.game_state("main"),
            "-m",
            fake,
            "-q",
            "1",
            *extra,
            client_id=client_id,
        )
        assert pub.returncode == 0, pub.stderr  # MQTT 3.1.1 has no negative PUBACK
    cleared = _mosquitto(
        "mosquitto_pub",
        hub.mqtt_port,
        "pi",
        password,
        "-t",
        TOPICS.game_state("main"),
        "-n",
        "-r",
        "-q",
        "1",
        client_id=client_id,
    )
    assert cleared.returncode == 0
    with hub.client("probe") as probe:
        assert probe.state()["p1_name"] is None
    # the embedded broker and Mosquitto log what their ACL drops (NATS's log is not
    # read here: on NATS the unchanged state above is the check)
    if hub.engine != "nats":
        wait_until(
            lambda: denied_publish_logged(hub, "pi", TOPICS.game_state("main")),
            what="the broker to log the denied publish",
        )


def test_ready_line_ready_file_and_health(hub: HubProcess) -> None:
    match = re.fullmatch(
        r"tablehub ready mqtt=127\.0\.0\.1:(\d+) http=127\.0\.0\.1:(\d+)", hub.ready_line
    )
    assert match is not None, hub.ready_line
    assert (int(match[1]), int(match[2])) == (hub.mqtt_port, hub.http_port)
    ready = hub.ready()
    assert ready["mqtt"] == f"127.0.0.1:{hub.mqtt_port}"
    assert ready["http"] == f"127.0.0.1:{hub.http_port}"
    with urllib.request.urlopen(f"http://127.0.0.1:{hub.http_port}/healthz", timeout=5) as r:
        health = json.loads(r.read())
    assert health["ok"] is True


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_publishes_offline_and_exits_0(
    hub: HubProcess, connect: ClientFactory, sig: int
) -> None:
    watcher = connect("watcher")
    watcher.subscribe(TOPICS.status)
    assert watcher.on_topic(TOPICS.status).json()["state"] == "online"
    mark = len(watcher.messages)
    hub.signal(sig)
    offline = watcher.wait_for(lambda m: m.topic == TOPICS.status, after=mark)
    assert offline.json()["state"] == "offline"
    assert offline.json()["epoch"] == 1
    code, _ = hub.wait_exit(timeout=30)  # a generous deadline: correctness, not speed
    assert code == 0
    assert not (hub.data_dir / "ready.json").exists()


def test_presence_will_marks_a_vanished_player_disconnected(
    hub: HubProcess, connect: ClientFactory
) -> None:
    watcher = connect("watcher")
    alice = connect("alice", presence=True)
    alice.send({"type": "join", "name": "Alice"})

    def connected(state: dict[str, object]) -> bool:
        return state["players"][0]["connected"]  # type: ignore[index, no-any-return]

    watcher.subscribe(TOPICS.game_state("main"))
    watcher.wait_for(lambda m: m.topic.endswith("/state") and connected(m.json()))
    version = watcher.state()["version"]
    mark = len(watcher.messages)
    alice.drop()  # no DISCONNECT: the broker publishes the will
    gone = watcher.wait_for(
        lambda m: m.topic.endswith("/state") and not connected(m.json()), after=mark
    )
    assert gone.json()["version"] == version, "presence never bumps the version"
    assert gone.json()["players"][0]["client_id"] == "alice"


def test_stats_are_retained_with_counters(tmp_path: Path) -> None:
    with (
        HubProcess(tmp_path / "var", env={"HUB_STATS_INTERVAL": "0.2"}) as hub,
        hub.client("alice", presence=True) as alice,
    ):
        alice.send({"type": "join", "name": "Alice"})
        alice.send({"type": "teleport"})
        alice.send({"type": "join", "name": "Alice"}, game="nope")
        with hub.client("watcher") as watcher:
            watcher.subscribe(TOPICS.stats)
            first = watcher.on_topic(TOPICS.stats)
            assert first.retain
            counted = watcher.wait_for(
                lambda m: m.topic == TOPICS.stats and m.json()["commands_rejected"] == 2
            ).json()
    assert counted["games"] == {"main": {"accepted": 1, "rejected": 1}}
    assert counted["commands_accepted"] == 1
    assert counted["clients_connected"] == 1
    assert counted["uptime_s"] > 0
    assert counted["epoch"] == 1


@pytest.mark.parametrize(
    ("args", "env", "needle"),
    [
        (["--mqtt-port", "70000"], {}, "mqtt_port"),
        ([], {"HUB_GAMES": '["Bad Name"]'}, "games"),
        (["--topic-root", "a/#"], {}, "topic_root"),
        (["--config", "/nonexistent.toml"], {}, "does not exist"),
    ],
)
def test_bad_settings_fail_fast_with_a_clear_message(
    tmp_path: Path, args: list[str], env: dict[str, str], needle: str
) -> None:
    hub = HubProcess(tmp_path / "var", *args, env=env)
    done = subprocess.run(
        hub.command(), env=hub.env, capture_output=True, text=True, timeout=20, check=False
    )
    assert done.returncode == 2
    assert needle in done.stderr
    assert "Traceback" not in done.stderr


def test_history_of_empty_data_dir_is_a_clear_error(tmp_path: Path) -> None:
    done = run_cli("history", "--data-dir", str(tmp_path / "none"))
    assert done.returncode == 1
    assert "no journal" in done.stderr
