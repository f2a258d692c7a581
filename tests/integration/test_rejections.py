"""Every rejection path over real MQTT: a clear error code, and nothing changes."""

from __future__ import annotations

from typing import Any

import pytest

from tests.integration.conftest import ClientFactory
from tests.support.hub import HubProcess, denied_publish_logged
from tests.support.mqtt import TOPICS, TestClient
from tests.support.waiting import wait_until


def _seat_two(connect: ClientFactory) -> tuple[TestClient, TestClient]:
    alice, bob = connect("alice"), connect("bob")
    assert alice.send({"type": "join", "name": "Alice"})["ok"]
    assert bob.send({"type": "join", "name": "Bob"})["ok"]
    return alice, bob


def _assert_unchanged(hub: HubProcess, before: Any) -> None:
    """The retained state is exactly what it was (same version, same everything)."""
    with hub.client("probe") as probe:
        assert probe.state() == before


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        (b"not json", "invalid_json"),
        (b"\xff\xfe\x00", "invalid_json"),
        (b"[1, 2]", "invalid_json"),
        (b"[" * 50_00 + b"]" * 50_00, "invalid_json"),
        (b'{"type": "end_turn", "points": NaN}', "invalid_json"),
        (b'{"points": 3}', "invalid_command"),
        (b'{"type": "end_turn", "points": "3"}', "invalid_command"),
        (b'{"type": "end_turn", "points": 1001}', "invalid_command"),
        (b'{"type": "join", "name": "Al", "color": "red"}', "invalid_command"),
        (b'{"type": "join", "name": "   "}', "invalid_command"),
        (b'{"type": "join", "name": "' + b"x" * 25 + b'"}', "invalid_command"),
        (b'{"type": "teleport"}', "unknown_command"),
        (b'{"type": "join", "name": "' + b"x" * 20_000 + b'"}', "payload_too_large"),
    ],
)
def test_bad_payloads_get_a_code_and_change_nothing(
    hub: HubProcess, connect: ClientFactory, payload: bytes, code: str
) -> None:
    alice = connect("alice")
    before = alice.state()
    reply = alice.send(payload)
    assert reply["ok"] is False
    assert reply["error"]["code"] == code
    assert reply["error"]["message"]
    _assert_unchanged(hub, before)


def test_request_id_is_echoed_on_rejection(hub: HubProcess, connect: ClientFactory) -> None:
    alice = connect("alice")
    reply = alice.send({"type": "teleport", "request_id": "r-42"})
    assert reply == {
        "request_id": "r-42",
        "ok": False,
        "error": {"code": "unknown_command", "message": reply["error"]["message"]},
    }


def test_unknown_game(hub: HubProcess, connect: ClientFactory) -> None:
    alice = connect("alice")
    reply = alice.send({"type": "join", "name": "A"}, game="nope")
    assert reply["error"]["code"] == "unknown_game"
    assert alice.state()["version"] == 0


def test_spoofed_command_topic_is_dropped_by_the_broker(
    hub: HubProcess, connect: ClientFactory
) -> None:
    alice, _bob = _seat_two(connect)
    mallory = connect("mallory")
    alice.send({"type": "start"})
    before = mallory.state(min_version=3)
    # QoS 1 only on the embedded broker: see _probe_qos in test_acl.py (Mosquitto 2.0.11)
    for qos in (0, 1) if hub.engine != "mosquitto" else (0,):
        mallory.publish(
            TOPICS.game_command("main", "alice"), {"type": "end_turn", "points": 1000}, qos=qos
        )
    # the service handles commands in order: once a later one is answered, the spoof is past
    assert mallory.send({"type": "teleport"})["error"]["code"] == "unknown_command"
    _assert_unchanged(hub, before)
    # the embedded broker and Mosquitto log what their ACL drops (NATS's log is not
    # read here: on NATS the unchanged state above is the check)
    if hub.engine != "nats":
        wait_until(
            lambda: denied_publish_logged(hub, "mallory", TOPICS.game_command("main", "alice")),
            what="the broker to log the denied publish",
        )
    assert all(m.json()["version"] <= 3 for m in alice.messages if m.topic.endswith("/reply"))


@pytest.mark.parametrize(
    ("setup", "sender", "command", "code"),
    [
        ("seated", "carol", {"type": "end_turn"}, "wrong_status"),
        ("started", "carol", {"type": "end_turn"}, "not_seated"),
        ("started", "bob", {"type": "end_turn"}, "not_your_turn"),
        ("seated", "carol", {"type": "join", "name": "C"}, "game_full"),
        ("one", "bob", {"type": "join", "name": "B", "seat": 1}, "seat_taken"),
        ("one", "alice", {"type": "join", "name": "A"}, "already_seated"),
        ("one", "alice", {"type": "start"}, "not_enough_players"),
        ("started", "alice", {"type": "leave"}, "wrong_status"),
        ("started", "alice", {"type": "start"}, "wrong_status"),
        ("seated", "alice", {"type": "resume"}, "wrong_status"),
        ("seated", "alice", {"type": "pause"}, "wrong_status"),
        ("seated", "alice", {"type": "reset"}, "forbidden"),
        ("seated", "alice", {"type": "kick", "seat": 2}, "forbidden"),
        ("seated", "operator", {"type": "undo", "expected_version": 0}, "version_conflict"),
        ("seated", "alice", {"type": "pause", "expected_version": 99}, "version_conflict"),
        ("one", "operator", {"type": "kick", "seat": 2}, "not_seated"),
        ("none", "operator", {"type": "undo"}, "nothing_to_undo"),
        ("seated", "carol", {"type": "rename", "name": "X"}, "not_seated"),
    ],
)
def test_rule_violations_change_nothing(
    hub: HubProcess,
    connect: ClientFactory,
    setup: str,
    sender: str,
    command: dict[str, Any],
    code: str,
) -> None:
    clients = {name: connect(name) for name in ("alice", "bob", "carol", "operator")}
    if setup != "none":
        clients["alice"].send({"type": "join", "name": "Alice"})
    if setup in ("seated", "started"):
        clients["bob"].send({"type": "join", "name": "Bob"})
    if setup == "started":
        clients["alice"].send({"type": "start"})
    before = clients["carol"].state()
    version_before = before["version"]

    reply = clients[sender].send(command)

    assert reply["ok"] is False, reply
    assert reply["error"]["code"] == code, reply
    after = clients["carol"].state()
    assert after["version"] == version_before
    _assert_unchanged(hub, before)
