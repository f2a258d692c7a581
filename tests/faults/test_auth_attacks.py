"""Attacks on authentication and the ACL: password guessing in a loop is slowed down (and
the right password from another address is not), forged and expired session tokens are
refused, no role reads another player's replies or commands, and no role publishes state,
events, status, join codes or anyone's replies.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from hub.auth import Role
from tests.faults.hubs import RestartableHub, ensure_user, operator_client
from tests.faults.invariants import assert_invariants, retained_state
from tests.faults.ledger import LEDGER, Category
from tests.faults.raw import CONNACK_ACCEPTED, try_login
from tests.faults.web import Api
from tests.support.mqtt import TOPICS, TestClient

THROTTLE_BASE, THROTTLE_CAP = 0.25, 5.0  # hub.auth.LoginThrottle's defaults


def _expected_delay(failure: int) -> float:
    return float(min(THROTTLE_CAP, THROTTLE_BASE * 2.0 ** (failure - 1)))


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[RestartableHub]:
    with RestartableHub(tmp_path / "var", "--command-rate-limit", "0") as running:
        running.start()
        yield running


@pytest.mark.timeout(60)
def test_guessing_passwords_in_a_loop_is_slowed_down_and_the_right_one_is_not(
    hub: RestartableHub,
) -> None:
    address = hub.address
    alice = ensure_user(address.data_dir, "alice")
    ensure_user(address.data_dir, "pi", Role.DISPLAY)
    api = Api(address)
    code = api.join_code()
    guesses = ["operator", "alice", "pi", "nobody", "operator"]
    mqtt_delays: list[float] = []
    http_delays: list[float] = []

    def guess_mqtt() -> None:  # from another machine than the join codes' guesser
        for user in guesses:
            rc, seconds = try_login(
                address.mqtt_port, user, user, "letmein-123", source="127.0.0.3"
            )
            assert rc not in (None, CONNACK_ACCEPTED), (user, rc)
            mqtt_delays.append(seconds)

    def guess_join_codes() -> None:
        for i in range(len(guesses)):
            wrong = code[:-1] + str((int(code[-1]) + 1 + i) % 10)
            started = time.monotonic()
            attempt = {"game": "main", "name": "Eve", "join_code": wrong}
            status, body = api("POST", "/api/sessions", attempt)
            assert status == 403, body
            http_delays.append(time.monotonic() - started)

    attackers = [threading.Thread(target=guess_mqtt), threading.Thread(target=guess_join_codes)]
    for attacker in attackers:
        attacker.start()
    honest: list[float] = []
    while any(attacker.is_alive() for attacker in attackers):  # alice is on a third machine
        rc, seconds = try_login(address.mqtt_port, "alice", "alice", alice, source="127.0.0.2")
        assert rc == CONNACK_ACCEPTED
        honest.append(seconds)
        time.sleep(0.3)  # pacing of the honest user's logins
    for attacker in attackers:
        attacker.join()

    for delays in (mqtt_delays, http_delays):
        assert len(delays) == len(guesses)
        for failure, seconds in enumerate(delays, start=1):
            assert seconds >= 0.9 * _expected_delay(failure), delays
    # not held back by the attacker's lock (4 s by its end); one argon2 check on a loaded
    # machine may take half a second
    assert max(honest) < 0.75 * _expected_delay(len(guesses)), f"held back: {honest}"
    LEDGER.add(Category.AUTH_ATTACKS, inputs=2 * len(guesses), refused=2 * len(guesses))


def _forgeries(a: dict[str, Any], b: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """(what, client id, user name, password) of logins a thief might try."""
    aid, token = a["client_id"], a["token"]
    flipped = token[:-1] + ("A" if token[-1] != "A" else "B")
    return [
        ("another session's token", aid, aid, b["token"]),
        ("one character changed", aid, aid, flipped),
        ("one character short", aid, aid, token[:-1]),
        ("one character more", aid, aid, token + "x"),
        ("empty token", aid, aid, ""),
        ("the stored digest", aid, aid, hashlib.sha256(token.encode()).hexdigest()),
        ("a made-up session", "p-000000000000", "p-000000000000", token),
        ("upper-case session id", aid.upper(), aid.upper(), token),
        ("the token as the operator", "op-thief", "operator", token),
        ("SQL in the user name", "p-x", "p-' OR '1'='1", token),
        ("someone else's client id", "p-someoneelse", aid, token),
    ]


@pytest.mark.timeout(90)
def test_forged_and_expired_session_tokens_are_refused(tmp_path: Path) -> None:
    ttl = 6.0
    with RestartableHub(tmp_path / "var", env={"HUB_SESSION_TTL": str(ttl)}) as hub:
        hub.start()
        address = hub.address
        api = Api(address)
        a, b = api.session("Ann"), api.session("Ben")
        assert try_login(address.mqtt_port, a["client_id"], a["client_id"], a["token"])[0] == 0

        forgeries = _forgeries(a, b)

        def forge(i: int, forgery: tuple[str, str, str, str]) -> tuple[str, int | None]:
            # each from its own address: one address's attempts wait out each other's locks
            return forgery[0], try_login(address.mqtt_port, *forgery[1:], source=f"127.0.1.{i}")[0]

        with ThreadPoolExecutor(len(forgeries)) as pool:
            results = list(pool.map(forge, range(1, len(forgeries) + 1), forgeries))
        accepted = [what for what, rc in results if rc == CONNACK_ACCEPTED]
        assert accepted == [], f"forged logins accepted: {accepted}"

        expires_at = datetime.fromisoformat(a["expires_at"].replace("Z", "+00:00")).timestamp()
        while time.time() <= expires_at + 0.1:  # the session's own clock: wait it out
            time.sleep(0.05)
        rc, _ = try_login(
            address.mqtt_port, a["client_id"], a["client_id"], a["token"], source="127.0.2.1"
        )
        assert rc not in (None, CONNACK_ACCEPTED), "an expired session was accepted"
        fresh = api.session("Cid")
        fresh_id = fresh["client_id"]
        assert (
            try_login(address.mqtt_port, fresh_id, fresh_id, fresh["token"])[0] == CONNACK_ACCEPTED
        )
    LEDGER.add(Category.AUTH_ATTACKS, inputs=len(forgeries) + 1, refused=len(forgeries) + 1)


# --- the ACL under attack -------------------------------------------------------------------

SPY_FILTERS = (
    "tablehub/clients/bob/reply",
    "tablehub/clients/+/reply",
    "tablehub/clients/#",
    "tablehub/#",
    "#",
    "+/clients/bob/reply",
    "+/+/bob/#",
    "tablehub/games/main/cmd/bob",
    "tablehub/games/+/cmd/+",
)


def _spies(hub: RestartableHub) -> dict[str, TestClient]:
    """A player, a phone (session player) and a display: none may read bob's replies."""
    address, data_dir = hub.address, hub.address.data_dir
    phone = Api(address).session("Phoebe")
    return {
        "player": TestClient(address.mqtt_port, "alice", password=ensure_user(data_dir, "alice")),
        "phone": TestClient(address.mqtt_port, phone["client_id"], password=phone["token"]),
        "display": TestClient(
            address.mqtt_port, "pi", password=ensure_user(data_dir, "pi", Role.DISPLAY)
        ),
    }


@pytest.mark.timeout(60)
def test_no_role_reads_another_players_replies_or_commands(hub: RestartableHub) -> None:
    data_dir = hub.address.data_dir
    spies = _spies(hub)
    with TestClient(hub.address.mqtt_port, "bob", password=ensure_user(data_dir, "bob")) as bob:
        for spy in spies.values():
            spy.__enter__()
        try:
            for spy in spies.values():
                for topic_filter in SPY_FILTERS:
                    spy.subscribe(topic_filter)  # granted or refused: either way, no leak
            secret = "bob-secret-request"
            assert bob.send({"type": "join", "name": "Bob", "request_id": f"{secret}-1"})["ok"]
            for i in range(2, 6):
                bob.send({"type": "rename", "name": f"Bob {i}", "request_id": f"{secret}-{i}"})
            for spy in spies.values():  # a round trip each: bob's replies went out before
                spy.send({"type": "rename", "name": "Spy"})
            for role, spy in spies.items():
                leaked = [
                    m.topic
                    for m in spy.messages
                    if secret.encode() in m.payload
                    or m.topic.endswith("/bob/reply")
                    or m.topic.endswith("/cmd/bob")
                ]
                assert leaked == [], f"the {role} read: {leaked}"
        finally:
            for spy in spies.values():
                spy.close()
    LEDGER.add(Category.AUTH_ATTACKS, inputs=len(spies) * len(SPY_FILTERS))


FORGED_TOPICS = (
    "tablehub/games/main/state",
    "tablehub/games/main/events",
    "tablehub/status",
    "tablehub/stats",
    "tablehub/games/main/join",
    "tablehub/clients/bob/reply",
    "tablehub/clients/bob/presence",
    "tablehub/games/main/cmd/bob",
)


@pytest.mark.timeout(60)
def test_no_role_publishes_state_events_status_or_others_replies(hub: RestartableHub) -> None:
    address, data_dir = hub.address, hub.address.data_dir
    clients = _spies(hub)
    clients["operator"] = operator_client(address, "operator")
    forged = b'{"forged": true, "version": 999, "ok": true, "state": "offline"}'
    with (
        TestClient(address.mqtt_port, "bob", password=ensure_user(data_dir, "bob")) as bob,
        operator_client(address, "watcher") as watcher,
    ):
        watcher.subscribe("tablehub/#")
        assert bob.send({"type": "join", "name": "Bob"})["ok"]
        for client in clients.values():
            client.__enter__()
        attempts = 0
        try:
            for client in clients.values():
                for topic in FORGED_TOPICS:
                    for retain in (False, True):
                        client.publish(topic, forged, retain=retain)
                        attempts += 1
                    client.publish(topic, b"", retain=True)  # clearing a retained message
                    attempts += 1
            for client in clients.values():  # a round trip each: the forgeries went before
                client.send({"type": "rename", "name": "Forger"})
            bob.send({"type": "rename", "name": "Bob again"})
        finally:
            for client in clients.values():
                client.close()
        assert [m.topic for m in watcher.messages if m.payload == forged] == []
        assert [m.topic for m in bob.messages if m.payload == forged] == []
    retained = retained_state(address)
    journal = assert_invariants(data_dir, {}, retained=retained)
    assert [e.actor.client_id for e in journal.entries if e.command.type != "rename"] == ["bob"]
    with operator_client(address, "status-check") as probe:
        probe.subscribe(TOPICS.status)
        assert probe.on_topic(TOPICS.status).json()["state"] == "online"
    LEDGER.add(Category.AUTH_ATTACKS, inputs=attempts)
