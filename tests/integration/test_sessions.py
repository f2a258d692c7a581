"""Player sessions can be taken back: kick, expiry, the operator's API and CLI, and caps.

A real ``hub serve`` (its embedded broker, or a NATS node whose logins the hub's callout
answers), phones as paho clients with their session's credentials. A session that ends
loses its connection, and its token is refused (CONNACK 5) from then on.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.cli import run_cli
from tests.support.http import Http
from tests.support.hub import HubProcess
from tests.support.mqtt import TOPICS, TestClient, refused_login
from tests.support.nats import NatsCluster, nats_server

_FAST_SWEEP = {"HUB_SESSION_SWEEP_INTERVAL": "0.2"}


@pytest.fixture(params=["embedded", "nats"])
def hub(request: pytest.FixtureRequest, data_dir: Path) -> Iterator[HubProcess]:
    if request.param == "embedded":
        with HubProcess(data_dir, env=_FAST_SWEEP) as running:
            yield running
        return
    if nats_server() is None:
        pytest.skip("nats-server is missing (make setup installs it)")
    with (
        NatsCluster(data_dir.parent / "nats") as cluster,
        HubProcess(data_dir, env=_FAST_SWEEP, broker=cluster) as running,
    ):
        yield running


@pytest.fixture
def http(hub: HubProcess) -> Http:
    return Http(hub)


def _phone(hub: HubProcess, session: dict[str, Any]) -> TestClient:
    return TestClient(hub.mqtt_port, session["client_id"], password=session["token"]).__enter__()


def _refused(hub: HubProcess, session: dict[str, Any]) -> bool:
    """True on a refusing CONNACK; an accepted login fails, no answer raises."""
    refused_login(hub.mqtt_port, session["client_id"], password=session["token"])
    return True


def _taken_back(hub: HubProcess, phone: TestClient, session: dict[str, Any]) -> None:
    """The phone's connection was closed by the hub, and its token no longer logs in."""
    try:
        assert phone.disconnected.wait(20), "the hub kept the connection"
        assert _refused(hub, session)
    finally:
        phone.close()


def test_a_kicked_player_is_disconnected_and_cannot_come_back(hub: HubProcess, http: Http) -> None:
    alice, bob = http.session("Alice"), http.session("Bob")
    phone, other = _phone(hub, alice), _phone(hub, bob)
    try:
        phone.send({"type": "join", "name": "Alice"})
        other.send({"type": "join", "name": "Bob"})
        assert phone.send({"type": "start"})["ok"]
        assert phone.send({"type": "end_turn", "points": 7})["ok"]
        with hub.client("operator", role="operator") as operator:
            operator.subscribe(TOPICS.game_events("main"))
            version = operator.send({"type": "kick", "seat": 1})["version"]
            event = operator.on_topic(TOPICS.game_events("main")).json()
            assert (event["type"], event["seat"], event["score"]) == ("kick", 1, 7)
            state = operator.state(min_version=version)
            assert [p["score"] for p in state["players"]] == [0, 0]  # the 7 left with alice
        _taken_back(hub, phone, alice)
        assert not other.disconnected.is_set()  # only the kicked one
        assert other.send({"type": "rename", "name": "Bob"})["ok"]
        listed = http("GET", "/api/games/main/sessions", auth=http.operator)[1]
        assert [s["client_id"] for s in listed["sessions"]] == [bob["client_id"]]
    finally:
        other.close()


def test_an_expired_session_is_disconnected(data_dir: Path) -> None:
    with HubProcess(data_dir, env={**_FAST_SWEEP, "HUB_SESSION_TTL": "3"}) as hub:
        session = Http(hub).session("Carol")
        phone = _phone(hub, session)
        assert phone.send({"type": "join", "name": "Carol"})["ok"]
        _taken_back(hub, phone, session)
        assert "its player session was expired" in hub.log_text()


def test_the_operator_lists_and_revokes_sessions_over_http(hub: HubProcess, http: Http) -> None:
    dave, erin = http.session("Dave"), http.session("Erin")
    status, body = http("GET", "/api/games/main/sessions", auth=http.operator)
    assert status == 200
    assert [(s["client_id"], s["name"]) for s in body["sessions"]] == [
        (dave["client_id"], "Dave"),
        (erin["client_id"], "Erin"),
    ]
    assert body["sessions"][0]["address"] == "127.0.0.1"
    assert "token" not in body["sessions"][0]
    assert http("GET", "/api/games/main/sessions")[0] == 401
    assert http("GET", "/api/games/nope/sessions", auth=http.operator)[0] == 404
    phone = _phone(hub, dave)
    assert http("DELETE", f"/api/sessions/{dave['client_id']}")[0] == 401
    assert not phone.disconnected.wait(0.5)
    assert http("DELETE", f"/api/sessions/{dave['client_id']}", auth=http.operator)[0] == 204
    _taken_back(hub, phone, dave)
    status, body = http("DELETE", f"/api/sessions/{dave['client_id']}", auth=http.operator)
    assert (status, body["error"]["code"]) == (404, "unknown_session")
    listed = http("GET", "/api/games/main/sessions", auth=http.operator)[1]["sessions"]
    assert [s["client_id"] for s in listed] == [erin["client_id"]]


def test_the_cli_lists_and_revokes_sessions_beside_the_running_hub(
    hub: HubProcess, http: Http
) -> None:
    frank = http.session("Frank")
    data = hub.store_args
    listed = run_cli("sessions", "list", "--game", "main", *data)
    assert listed.returncode == 0, listed.stderr
    assert frank["client_id"] in listed.stdout
    assert "Frank" in listed.stdout
    assert frank["token"] not in listed.stdout
    phone = _phone(hub, frank)
    revoked = run_cli("sessions", "revoke", frank["client_id"], *data)
    assert revoked.returncode == 0, revoked.stderr
    assert f"revoked {frank['client_id']}" in revoked.stdout
    _taken_back(hub, phone, frank)  # the hub's sweep noticed
    again = run_cli("sessions", "revoke", frank["client_id"], *data)
    assert again.returncode == 1
    assert "no live session" in again.stderr
    assert frank["client_id"] not in run_cli("sessions", "list", *data).stdout


def test_sessions_are_capped_per_address_and_per_game(data_dir: Path) -> None:
    caps = {"HUB_MAX_SESSIONS_PER_ADDRESS": "3", "HUB_MAX_SESSIONS_PER_GAME": "5"}
    with HubProcess(data_dir, env={**_FAST_SWEEP, **caps}) as hub:
        http = Http(hub)
        code = http.join_code()
        ask = {"game": "main", "name": "Gus", "join_code": code}
        made = [http("POST", "/api/sessions", ask)[1]["client_id"] for _ in range(3)]
        status, body = http("POST", "/api/sessions", ask)
        assert (status, body["error"]["code"]) == (429, "too_many_sessions")
        assert "this address" in body["error"]["message"]
        # a revoked session no longer counts
        assert http("DELETE", f"/api/sessions/{made[0]}", auth=http.operator)[0] == 204
        assert http("POST", "/api/sessions", ask)[0] == 200
    with HubProcess(data_dir, env={**_FAST_SWEEP, "HUB_MAX_SESSIONS_PER_ADDRESS": "0"}) as hub:
        http = Http(hub)
        ask = {"game": "main", "name": "Gus", "join_code": http.join_code()}
        statuses = [http("POST", "/api/sessions", ask)[0] for _ in range(200 - 3)]
        assert statuses == [200] * (200 - 3)  # 3 live from before: the default cap is 200
        status, body = http("POST", "/api/sessions", ask)
        assert (status, body["error"]["code"]) == (429, "too_many_sessions")
        assert "game 'main'" in body["error"]["message"]
