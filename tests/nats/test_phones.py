"""Phones on a 3-node NATS cluster, with a web bridge beside each node.

The service is attached to node 1. Node 2's bridge serves a phone (real Chromium): its
session is minted there (into the cluster's key-value buckets) and its MQTT goes through
that bridge's ``/mqtt`` to node 2. A player on node 3 holds a session from node 3's
bridge. They play a whole game; ``mosquitto_sub`` on node 2 reads the retained state; the
phone then moves to node 3's bridge with its saved session and keeps its seat. A user
added by ``hub users add --broker`` logs in on every node. The bridges have data dirs of
their own (empty): nothing they need is on the hub's disk.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.integration.test_standalone_bridge import BridgeProcess
from tests.support.browser import WAIT_MS, launch_chromium, phone_page
from tests.support.cli import run_cli
from tests.support.http import Http
from tests.support.hub import HubProcess, password_of
from tests.support.mosquitto import can_login
from tests.support.mqtt import TOPICS, TestClient
from tests.support.nats import NatsCluster, nats_server

pytestmark = pytest.mark.skipif(nats_server() is None, reason="nats-server is missing")

_SESSION_KEY = "tablehub.session.main"


def _bridge_http(hub: HubProcess, bridge: BridgeProcess) -> Http:
    http = Http(hub)  # the operator's password: the cluster's first operator
    http.base = f"http://127.0.0.1:{bridge.http_port}"
    return http


def _end_turn(page: Page, plus: int) -> None:
    expect(page.get_by_test_id("status")).to_have_text("Your turn!", timeout=WAIT_MS)
    page.get_by_test_id(f"plus-{plus}").click()
    page.get_by_test_id("end-turn").click()


def _retained_state_on(port: int, user: str, password: str) -> dict[str, object]:
    """The retained state, as ``mosquitto_sub`` reads it on ``port``."""
    mosquitto_sub = shutil.which("mosquitto_sub")
    assert mosquitto_sub is not None, "mosquitto_sub is missing (make system-deps)"
    done = subprocess.run(
        [
            *(mosquitto_sub, "-h", "127.0.0.1", "-p", str(port), "-V", "mqttv311"),
            *("-i", user, "-u", user, "-P", password),
            *("-t", TOPICS.game_state("main"), "-C", "1", "-W", "20"),
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    state: dict[str, object] = json.loads(done.stdout)
    return state


@pytest.mark.timeout(240)
def test_phones_play_through_the_bridges_of_other_nodes(tmp_path: Path) -> None:
    with (
        NatsCluster(tmp_path / "nats", nodes=3) as cluster,
        HubProcess(
            tmp_path / "hub",
            "--command-rate-limit",
            "0",
            env={"HUB_MAX_ROUNDS": "2"},
            broker=cluster,
        ) as hub,
        BridgeProcess(hub, cluster, node=2, data_dir=tmp_path / "bridge2") as bridge2,
        BridgeProcess(hub, cluster, node=3, data_dir=tmp_path / "bridge3") as bridge3,
        sync_playwright() as playwright,
    ):
        browser: Browser = launch_chromium(playwright)
        errors: list[str] = []
        http2, http3 = _bridge_http(hub, bridge2), _bridge_http(hub, bridge3)
        code = http2.join_code()
        assert http3.join_code() == code  # one code for the game, in the cluster

        alice = phone_page(browser, errors)
        alice.goto(f"http://127.0.0.1:{bridge2.http_port}/?game=main&code={code}")
        alice.get_by_test_id("name").fill("Alice")
        alice.get_by_test_id("join").click()
        expect(alice.get_by_test_id("connection")).to_have_text("connected", timeout=WAIT_MS)
        alice.get_by_test_id("sit-1").click()
        expect(alice.get_by_test_id("seat-1")).to_have_attribute("data-mine", "true")

        phone = http3.session("Bob")  # minted by node 3's bridge
        with TestClient(cluster.mqtt_port(2), phone["client_id"], password=phone["token"]) as bob:
            assert bob.send({"type": "join", "name": "Bob"})["ok"]
            assert bob.state(min_version=2)["players"][1]["name"] == "Bob"
            alice.get_by_test_id("start").click()
            for bobs_turn in (4, 6):  # versions: joins 1-2, start 3, then the turns
                _end_turn(alice, 5)
                state = bob.state(min_version=bobs_turn, timeout=20)
                assert state["current_player_id"] == 2, state
                assert bob.send({"type": "end_turn", "points": 1})["ok"]
            expect(alice.get_by_test_id("status")).to_have_text("You won!", timeout=WAIT_MS)

        final = _retained_state_on(
            cluster.mqtt_port(1), "tv", password_of(hub, "tv", role="display")
        )
        assert final["status"] == "finished"
        assert [p["score"] for p in final["players"]] == [10, 2]  # type: ignore[attr-defined]

        # the phone moves to node 3's bridge (same public name, another machine behind it)
        saved = alice.evaluate(f"localStorage.getItem('{_SESSION_KEY}')")
        alice.context.close()
        moved = phone_page(browser, errors)
        moved.goto(f"http://127.0.0.1:{bridge3.http_port}/favicon.svg")
        moved.evaluate(f"(saved) => localStorage.setItem('{_SESSION_KEY}', saved)", saved)
        moved.goto(f"http://127.0.0.1:{bridge3.http_port}/?game=main")
        expect(moved.get_by_test_id("connection")).to_have_text("connected", timeout=WAIT_MS)
        expect(moved.get_by_test_id("seat-1")).to_have_attribute("data-mine", "true")
        expect(moved.get_by_test_id("me")).to_have_text("You: Alice, seat 1")
        assert [e for e in errors if e.startswith("page error")] == []
        for http in (http2, http3):
            status, health = http("GET", "/healthz")
            assert status == 200, health
            assert health["ok"], health

        added = run_cli("users", "add", "carol", "--role", "display", "--broker", cluster.url)
        assert added.returncode == 0, added.stderr
        password = added.stdout.split("password: ")[1].strip()
        for node in range(3):
            assert can_login(cluster.mqtt_port(node), "carol", password, "carol"), node
        browser.close()
