"""The web bridge end to end: a real ``hub serve`` (embedded broker) on free ports.

Player sessions and join codes over HTTP, the retained join code topic, history, health,
metrics, and MQTT over the bridge's WebSocket with a session token.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect as ws_connect
from websockets.typing import Subprotocol

from tests.support.http import Http
from tests.support.hub import HubProcess, password_of
from tests.support.mqtt import TOPICS, LoginRefusedError, TestClient, refused_login
from tests.support.waiting import wait_until


@pytest.fixture
def hub(data_dir: Path) -> Iterator[HubProcess]:
    with HubProcess(data_dir) as running:
        yield running


@pytest.fixture
def http(hub: HubProcess) -> Http:
    return Http(hub)


def _player(hub: HubProcess, session: dict[str, Any], *, websocket: bool = False) -> TestClient:
    return TestClient(
        hub.http_port if websocket else hub.mqtt_port,
        session["client_id"],
        password=session["token"],
        websocket_path=session["ws_path"] if websocket else None,
    )


def _refused(hub: HubProcess, client_id: str, password: str) -> bool:
    """True on a refusing CONNACK; an accepted login fails, no answer raises."""
    refused_login(hub.mqtt_port, client_id, password=password)
    return True


def _accepted(hub: HubProcess, client_id: str, password: str) -> bool:
    """False on a refusing CONNACK, True once accepted; no answer raises."""
    try:
        with TestClient(hub.mqtt_port, client_id, password=password):
            return True
    except LoginRefusedError:
        return False


# --- sessions ------------------------------------------------------------------------------


def test_a_session_is_mqtt_credentials_for_a_player(hub: HubProcess, http: Http) -> None:
    session = http.session("  Alice ")
    assert session["client_id"].startswith("p-")
    assert session["game"] == "main"
    assert session["topic_root"] == "tablehub"
    assert session["ws_path"] == "/mqtt"
    assert session["expires_at"].endswith("Z")
    assert len(session["token"]) >= 43
    assert session["token"] not in (hub.data_dir / "sessions.sqlite3").read_bytes().decode(
        errors="replace"
    )
    with _player(hub, session) as phone:
        reply = phone.send({"type": "join", "name": "Alice"})
        assert reply["ok"] is True
        state = phone.state(min_version=reply["version"])
        assert state["players"][0]["client_id"] == session["client_id"]


def test_session_requests_are_checked(http: Http) -> None:
    code = http.join_code()
    wrong = "1" * len(code) if code != "1" * len(code) else "2" * len(code)
    status, body = http("POST", "/api/sessions", {"game": "main", "name": "A", "join_code": wrong})
    assert status == 403
    assert body["error"]["code"] == "wrong_join_code"
    status, body = http("POST", "/api/sessions", {"game": "nope", "name": "A", "join_code": code})
    assert status == 404
    assert body["error"]["code"] == "unknown_game"
    for name in ("", "   ", "x" * 25, "a\u0007b"):
        status, _ = http("POST", "/api/sessions", {"game": "main", "name": name, "join_code": code})
        assert status == 422, name


def test_forged_and_unknown_tokens_are_refused_by_the_broker(hub: HubProcess, http: Http) -> None:
    session = http.session("Bob")
    assert _refused(hub, session["client_id"], session["token"][:-2] + "xx")
    assert _refused(hub, "p-000000000000", session["token"])
    assert "refused login" in hub.log_text()
    with _player(hub, session):
        pass


def test_sessions_expire(data_dir: Path) -> None:
    with HubProcess(data_dir, env={"HUB_SESSION_TTL": "1.5"}) as hub:
        session = Http(hub).session("Carol")
        with _player(hub, session):
            pass
        wait_until(
            lambda: not _accepted(hub, session["client_id"], session["token"]),
            timeout=15,
            what="the session to expire",
        )
        assert _refused(hub, session["client_id"], session["token"])


# --- join codes ----------------------------------------------------------------------------


def test_join_codes_need_an_operator(hub: HubProcess, http: Http) -> None:
    assert http("GET", "/api/games/main/join-code")[0] == 401
    password_of(hub, "pi", "display")
    assert http("POST", "/api/games/main/join-code", auth="pi:pw-pi-0123456789")[0] == 401
    assert http("POST", "/api/games/main/join-code", auth="operator:wrong")[0] == 401
    assert http("GET", "/api/games/nope/join-code", auth=http.operator)[0] == 404


def test_rotation_is_published_retained_to_displays_and_operators_only(
    hub: HubProcess, http: Http
) -> None:
    topic = TOPICS.game_join("main")
    old = http.join_code()
    base = http("GET", "/api/info")[1]["public_url"]  # the LAN address: see test_public_url
    assert base == f"{base.rsplit(':', 1)[0]}:{hub.http_port}"
    with (
        hub.client("pi", role="display") as pi,
        hub.client("operator") as operator,
        _player(hub, http.session("Dave")) as phone,
    ):
        for client in (pi, operator, phone):
            client.subscribe(f"{TOPICS.root}/#")
        for client in (pi, operator):
            retained = client.on_topic(topic)
            assert retained.retain
            link = f"{base}/?game=main&code={old}"
            assert retained.json() == {"game": "main", "code": old, "url": link}
        status, body = http("POST", "/api/games/main/join-code", auth=http.operator)
        assert status == 200
        new = body["code"]
        assert body["url"] == f"{base}/?game=main&code={new}"
        assert new != old
        assert 4 <= len(new) <= 6
        assert new.isdigit()
        for client in (pi, operator):
            client.wait_for(lambda m: m.topic == topic and m.json()["code"] == new)
        phone.on_topic(TOPICS.game_state("main"))
        assert not any(m.topic == topic for m in phone.messages)
    status, _ = http("POST", "/api/sessions", {"game": "main", "name": "E", "join_code": old})
    assert status == 403
    assert http.session("Eve")["client_id"]


# --- snapshot, history, health, metrics ----------------------------------------------------


def test_snapshot_history_and_metrics_follow_the_game(hub: HubProcess, http: Http) -> None:
    alice, bob = http.session("Alice"), http.session("Bob")
    with _player(hub, alice) as a, _player(hub, bob) as b:
        assert a.send({"type": "join", "name": "Alice"})["ok"]
        assert b.send({"type": "join", "name": "Bob"})["ok"]
        assert a.send({"type": "start", "max_rounds": 3})["ok"]
        assert a.send({"type": "end_turn", "points": 3})["ok"]
        refused = b.send({"type": "start"})
        assert refused["error"]["code"] == "wrong_status"
        status, snapshot = http("GET", "/api/games/main")
        assert status == 200
        assert snapshot["version"] == 4
        assert snapshot["p1_name"] == "Alice"
        assert snapshot["players"][0]["score"] == 3

        status, metrics = http("GET", "/metrics")
        assert status == 200
        assert 'tablehub_commands_total{game="main",result="accepted"} 4' in metrics
        assert 'tablehub_commands_total{game="main",result="rejected"} 1' in metrics
        assert 'tablehub_commands_rejected_total{code="wrong_status"} 1' in metrics
        assert 'tablehub_clients_connected{role="player"} 2' in metrics
        assert 'tablehub_journal_entries{game="main"} 4' in metrics
        assert "tablehub_player_sessions 2" in metrics
        # 5 commands, each timed from arrival to its reply; +Inf counts them all.
        assert 'tablehub_command_latency_seconds_bucket{le="+Inf"} 5' in metrics
        assert "tablehub_command_latency_seconds_count 5" in metrics
        assert "# TYPE tablehub_command_latency_seconds histogram" in metrics

    status, page = http("GET", "/api/games/main/history?limit=3")
    assert status == 200
    assert [e["version"] for e in page["events"]] == [1, 2, 3]
    assert [e["type"] for e in page["events"]] == ["join", "join", "start"]
    assert page["events"][0]["by"] == alice["client_id"]
    assert page["next_after"] == 3
    status, page = http("GET", "/api/games/main/history?after=3&limit=3")
    assert [e["version"] for e in page["events"]] == [4]
    assert page["events"][0]["points"] == 3
    assert page["next_after"] is None
    assert http("GET", "/api/games/main/history?limit=0")[0] == 422
    assert http("GET", "/api/games/nope/history")[0] == 404
    assert http("GET", "/api/games/nope")[0] == 404


def test_health_and_docs(http: Http) -> None:
    status, health = http("GET", "/healthz")
    assert status == 200
    assert health["ok"] is True
    assert all(health[part]["ok"] for part in ("broker", "state_service", "disk"))
    status, openapi = http("GET", "/openapi.json")
    assert status == 200
    assert "/api/sessions" in openapi["paths"]
    assert http("GET", "/docs")[0] == 200


# --- MQTT over WebSocket -------------------------------------------------------------------


def test_a_phone_plays_over_the_websocket(hub: HubProcess, http: Http) -> None:
    session = http.session("Fay")
    with _player(hub, session, websocket=True) as phone:
        reply = phone.send({"type": "join", "name": "Fay", "request_id": "f1"})
        assert reply == {"request_id": "f1", "ok": True, "version": 1}
        state = phone.state(min_version=1)
        assert state["p1_name"] == "Fay"
        assert any(m.retain for m in phone.messages if m.topic == TOPICS.game_state("main"))
        _, metrics = http("GET", "/metrics")
        assert "tablehub_websocket_connections 1" in metrics
    # a forged token over the WebSocket too
    refused_login(hub.http_port, session["client_id"], password="forged", websocket_path="/mqtt")


def _ws(hub: HubProcess) -> Any:
    return ws_connect(
        f"ws://127.0.0.1:{hub.http_port}/mqtt", subprotocols=[Subprotocol("mqtt")], open_timeout=10
    )


def test_websocket_frames_are_checked(hub: HubProcess) -> None:
    with _ws(hub) as ws:
        ws.send("not binary")
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=10)
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 1003
    with _ws(hub) as ws:
        ws.send(b"\x10" + b"\x00" * 70_000)
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=10)
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 1009
    with ws_connect(f"ws://127.0.0.1:{hub.http_port}/mqtt", open_timeout=10) as ws:
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=10)
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 1002  # no "mqtt" subprotocol offered


def test_a_websocket_flood_is_refused(data_dir: Path) -> None:
    # sockets that have not logged in have their own budget (ws_max_unauthenticated)
    env = {"HUB_WS_MAX_CONNECTIONS": "1", "HUB_WS_MAX_UNAUTHENTICATED": "1"}
    with HubProcess(data_dir, env=env) as hub, _ws(hub):
        with _ws(hub) as second, pytest.raises(ConnectionClosed) as closed:
            second.recv(timeout=10)
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 1013
        assert "try again later" in closed.value.rcvd.reason
