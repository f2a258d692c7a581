"""``web-bridge`` alone beside ``hub serve --broker`` on a NATS node: phones are seated by the
hub's auth callout (not Mosquitto's dynamic security plugin), through the bridge's
``/mqtt`` proxied to the node."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.test_standalone_bridge import BridgeProcess
from tests.support.http import Http
from tests.support.hub import HubProcess
from tests.support.mqtt import TestClient
from tests.support.nats import NatsCluster, nats_server

pytestmark = pytest.mark.skipif(nats_server() is None, reason="nats-server is missing")


def test_a_phone_takes_a_seat_through_the_standalone_bridge(tmp_path: Path) -> None:
    data_dir = tmp_path / "var"
    with (
        NatsCluster(tmp_path / "nats") as cluster,
        HubProcess(data_dir, broker=cluster) as hub,
        BridgeProcess(hub, cluster) as bridge,
    ):
        http = Http(hub)
        http.base = f"http://127.0.0.1:{bridge.http_port}"
        phone = http.session("Zoe")
        with TestClient(
            bridge.http_port, phone["client_id"], password=phone["token"], websocket_path="/mqtt"
        ) as zoe:
            assert zoe.send({"type": "join", "name": "Zoe"}) == {
                "request_id": zoe.messages[-1].json()["request_id"],
                "ok": True,
                "version": 1,
            }
        status, health = http("GET", "/healthz")
        assert status == 200
        assert health["ok"], health
