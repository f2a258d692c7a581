"""Authentication, the first operator, the rate limit and presence of vanished clients."""

from __future__ import annotations

import os
import stat
import time
from pathlib import Path

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from tests.support.cli import run_cli
from tests.support.hub import HubProcess, password_of
from tests.support.mqtt import TOPICS, TestClient


def _connack(
    port: int, client_id: str, user: str | None, password: str | None
) -> tuple[bool, float]:
    """(accepted, seconds until the CONNACK came)."""
    client = TestClient(port, client_id, password=password, username=user)
    started = time.monotonic()
    try:
        with client:
            return True, time.monotonic() - started
    except ConnectionRefusedError:
        return False, time.monotonic() - started


def test_first_start_creates_an_operator_once(hub: HubProcess) -> None:
    path = hub.data_dir / "operator.txt"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    # On Mosquitto, `hub mosquitto-config` made it, before the password file it writes
    assert hub.log_text().count("operator.txt") == (0 if hub.engine == "mosquitto" else 1)
    listed = run_cli("users", "list", "--data-dir", str(hub.data_dir))
    assert listed.returncode == 0
    assert "operator" in listed.stdout
    assert "operator" in listed.stdout.split()[1]
    password = path.read_text().strip()
    assert password not in hub.log_text()
    assert _connack(hub.mqtt_port, "tool-1", "operator", password)[0]
    assert _connack(hub.mqtt_port, "tool-2", "operator", password)[0]  # any client id


@pytest.mark.parametrize(
    ("client_id", "user", "password", "why"),
    [
        ("alice", "alice", "wrong-password", "wrong password"),
        ("alice", None, None, "anonymous"),
        ("alice", "alice", None, "no password"),
        ("nobody", "nobody", "pw-nobody-0123456789", "unknown user"),
        ("service", "service", "anything-at-all", "the internal service identity"),
        ("not-alice", "alice", "pw-alice-0123456789", "player with another client id"),
    ],
)
def test_bad_logins_are_refused(
    hub: HubProcess, client_id: str, user: str | None, password: str | None, why: str
) -> None:
    password_of(hub, "alice")  # alice exists, with password pw-alice-0123456789
    if client_id != user and user == "alice" and hub.engine == "mosquitto":
        pytest.skip("Mosquitto cannot tie client ids to usernames (docs/protocol.md)")
    accepted, _ = _connack(hub.mqtt_port, client_id, user, password)
    assert not accepted, why


def test_repeated_failures_from_one_address_are_slowed_down(data_dir: Path) -> None:
    with HubProcess(data_dir) as hub:
        delays = [_connack(hub.mqtt_port, f"x{i}", "operator", "wrong")[1] for i in range(5)]
        assert delays[-1] > delays[0] + 1.0, delays
        assert delays[-1] >= 2.0, delays  # 0.25 s doubling: the 5th waits 4 s
        started = time.monotonic()
        ok, _ = _connack(hub.mqtt_port, "good", "operator", password_of(hub, "operator"))
        assert ok
        assert time.monotonic() - started < 2.0, "a right password is not held back"


def test_users_cli_add_list_remove(hub: HubProcess) -> None:
    added = run_cli("users", "add", "pi2", "--role", "display", "--data-dir", str(hub.data_dir))
    assert added.returncode == 0
    password = added.stdout.split("password: ", 1)[1].strip()
    if hub.broker is not None:
        hub.broker.reload("pi2", password)
    assert _connack(hub.mqtt_port, "pi2", "pi2", password)[0]
    if hub.engine != "mosquitto":  # Mosquitto cannot tie client ids to usernames (docs)
        assert not _connack(hub.mqtt_port, "pi2-screen", "pi2", password)[0], "client id = name"
    again = run_cli("users", "add", "pi2", "--role", "display", "--data-dir", str(hub.data_dir))
    assert again.returncode == 1
    assert "already exists" in again.stderr
    removed = run_cli("users", "remove", "pi2", "--data-dir", str(hub.data_dir))
    assert removed.returncode == 0
    if hub.engine != "mosquitto":  # the hub (broker or callout) reads the store per login
        assert not _connack(hub.mqtt_port, "pi2", "pi2", password)[0]


def test_rate_limit_answers_rate_limited_and_spares_others(hub: HubProcess) -> None:
    with hub.client("alice") as alice, hub.client("bob") as bob:
        bob.send({"type": "join", "name": "Bob"})
        raw: paho.Client = alice._client
        for i in range(120):
            raw.publish(
                TOPICS.game_command("main", "alice"),
                f'{{"type":"leave","request_id":"b{i}"}}',
                qos=0,
            )
        alice.wait_for(lambda m: m.topic.endswith("/reply") and m.json()["request_id"] == "b119")
        replies = [m.json() for m in alice.messages if m.topic.endswith("/reply")]
        codes = {r["error"]["code"] for r in replies if not r["ok"]}
        assert "rate_limited" in codes
        assert "not_seated" in codes  # the first ones, within the burst, were judged normally
        assert len(replies) == 120, "every command gets exactly one reply"
        assert bob.send({"type": "rename", "name": "Bobby"})["ok"], "others are not limited"


def test_vanished_client_shows_offline_within_1_5_keepalive_plus_1_s(hub: HubProcess) -> None:
    keepalive = 2
    with hub.client("watcher") as watcher:
        watcher.subscribe(TOPICS.game_state("main"))
        phone = paho.Client(CallbackAPIVersion.VERSION2, client_id="alice")
        phone.username_pw_set("alice", password_of(hub, "alice"))
        phone.will_set(TOPICS.client_presence("alice"), b'{"state":"offline"}', qos=1, retain=True)
        phone.connect("127.0.0.1", hub.mqtt_port, keepalive=keepalive)
        phone.loop_start()
        phone.publish(
            TOPICS.client_presence("alice"), b'{"state":"online"}', qos=1, retain=True
        ).wait_for_publish(10)
        phone.publish(
            TOPICS.game_command("main", "alice"), b'{"type":"join","name":"Alice"}', qos=1
        ).wait_for_publish(10)
        watcher.wait_for(
            lambda m: m.topic.endswith("/state") and m.json()["players"][0]["connected"]
        )
        mark = len(watcher.messages)
        phone.loop_stop()  # Wi-Fi gone: no DISCONNECT, no PINGREQ, the socket stays open
        silent_since = time.monotonic()
        gone = watcher.wait_for(
            lambda m: m.topic.endswith("/state") and not m.json()["players"][0]["connected"],
            timeout=15,
            after=mark,
        )
        waited = time.monotonic() - silent_since
        sock = phone.socket()
        if sock is not None:
            sock.close()
    assert gone.json()["players"][0]["client_id"] == "alice"
    assert waited <= 1.5 * keepalive + 1, f"offline after {waited:.2f} s"
