"""A phone in real Chromium and a Pi node keep playing across a state-service failover.

A 3-node NATS cluster; ``hub serve`` instances a (active) and b (standby) as in
test_standby; a standalone web bridge beside node 2 (not a hub's own bridge, which would
die with it) serves the phone (Alice, seat 1); Bob plays from a TestClient on node 3; a Pi
node (``pi_node.app.run``, as ``pi-node --broker`` runs it) follows the game on node 3
with a display user of the cluster. After some turns the active service is killed with
``kill -9`` while it is Alice's turn; without a reload the phone taps "end turn": the page
may say it is sending again, and the tap is applied once b took over. The state advances on
the page, on the Pi's screen (which follows b's status: not NOT LIVE) and in the replicated
journal, exactly once. Then a runs again as the standby, and the phone's next tap is followed
at once by ``kill -9`` of b (before or after b stored it): applied once all the same. The
times from the kill (the tap) to the phone's command applied are printed (run with ``-s``),
not asserted. Without the page's resends the first tap is never applied (checked by hand).
Last, b runs again as the standby and the Pi's pause button is pressed while a is stopped
(SIGSTOP), then a gets ``kill -9``: the Pi sends it again until b answers, and the game is
paused once.
"""

from __future__ import annotations

import base64
import contextlib
import json
import re
import signal
import time
import urllib.request
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect, sync_playwright

from tests.integration.test_standalone_bridge import BridgeProcess
from tests.nats.services import ServiceProcess
from tests.nats.test_standby import _history, _online
from tests.pi_node.conftest import MockTable, RunningNode, node_settings
from tests.support.browser import WAIT_MS, launch_chromium, phone_page
from tests.support.hub import cluster_password
from tests.support.mqtt import TOPICS, TestClient
from tests.support.nats import NatsCluster, nats_server
from tests.support.waiting import wait_until

pytestmark = pytest.mark.skipif(nats_server() is None, reason="nats-server is missing")

FAILOVER_WAIT_MS = 120_000
"""How long the page may take to show the tap applied after the kill: the takeover plus
the page's resend backoff (3 s, 6 s, 12 s, then every 15 s), on a busy machine."""


_END_TURN = re.compile(rb'\{[^{}]*"type":"end_turn"[^{}]*\}')


def _join_code(http_port: int, operator: str) -> str:
    request = urllib.request.Request(f"http://127.0.0.1:{http_port}/api/games/main/join-code")
    auth = base64.b64encode(f"operator:{operator}".encode()).decode()
    request.add_header("Authorization", f"Basic {auth}")
    with urllib.request.urlopen(request, timeout=30) as response:
        code: str = json.loads(response.read())["code"]
    return code


def _end_turn(
    page: Page,
    plus: int,
    *,
    applied_within_ms: float = WAIT_MS,
    after_tap: Callable[[], object] = lambda: None,
) -> None:
    """Alice's turn on the phone: +``plus`` points, end the turn (then ``after_tap()``);
    wait until the page shows it applied (Bob's turn)."""
    status = page.get_by_test_id("status")
    expect(status).to_have_text("Your turn!", timeout=WAIT_MS)
    page.get_by_test_id(f"plus-{plus}").click()
    page.get_by_test_id("end-turn").click()
    after_tap()
    try:
        expect(status).to_have_text("Bob's turn", timeout=applied_within_ms)
    except AssertionError as exc:
        message = page.get_by_test_id("message").text_content()
        msg = f"the phone's end_turn was not applied; the page says {message!r}"
        raise AssertionError(msg) from exc


def _pi_follows(
    pi: RunningNode, watcher: TestClient, *parts: str, after: int, at_least: int
) -> str:
    """The Pi's screen once it shows ``parts``, not NOT LIVE, and the hub online at the
    epoch of the newest status the watcher got after ``after`` (at least ``at_least``).

    Under load the new active service may lose its lease and take over again, at a higher
    epoch (seen in a loaded run of the suite); the Pi must then follow that one.
    """

    def newest() -> int:
        statuses = [m.json() for m in watcher.messages[after:] if m.topic == TOPICS.status]
        online = statuses[-1] if statuses and statuses[-1]["state"] == "online" else None
        return int(online["epoch"]) if online is not None else -1

    def shows() -> bool:
        text = pi.screen.text()
        epoch = newest()
        return (
            epoch >= at_least
            and f"hub online (epoch {epoch})" in text
            and all(p in text for p in parts)
            and "NOT LIVE" not in text
        )

    try:
        wait_until(shows, 60, what="the Pi following the active service")
    except TimeoutError as exc:
        msg = f"{exc}; newest online epoch {newest()}; the screen shows:\n{pi.screen.text()}"
        raise TimeoutError(msg) from exc
    return pi.screen.text()


@pytest.mark.timeout(400)
def test_a_phone_and_a_pi_node_keep_playing_across_a_failover(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="pi_node")
    table = MockTable()
    data_dir = tmp_path / "var"
    data_dir.mkdir()
    with NatsCluster(tmp_path / "nats", nodes=3) as cluster, contextlib.closing(table.factory):
        bob_password = cluster_password(cluster.url, "bob")
        pi_password = cluster_password(cluster.url, "pi", role="display")
        args = ("--command-rate-limit", "0")
        a = ServiceProcess(data_dir, cluster, "a", *args)
        b = ServiceProcess(data_dir, cluster, "b", *args)
        with a, b:
            a.wait_line("tablehub ready")
            b.wait_line("tablehub standby")
            operator = (data_dir / "operator.txt").read_text().strip()
            with (
                TestClient(
                    cluster.mqtt_port(2), "watcher", username="operator", password=operator
                ) as watcher,
                BridgeProcess(None, cluster, node=2, data_dir=tmp_path / "bridge2") as bridge,
                RunningNode(
                    node_settings(cluster.mqtt_port(2), pi_password, tmp_path), table.hardware
                ) as pi,
                TestClient(cluster.mqtt_port(2), "bob", password=bob_password) as bob,
                sync_playwright() as playwright,
            ):
                watcher.subscribe(TOPICS.status)
                # every state from now on, live (a first run here, with Bob subscribing
                # only when he first asked for a state, timed out waiting for version 4;
                # a late retained read is the suspect, not proven)
                bob.subscribe(TOPICS.game_state("main"))
                first = watcher.wait_for(_online("a"), 30).json()
                pi.screen.wait_text(f"hub online (epoch {first['epoch']})", timeout=60)

                browser = launch_chromium(playwright)
                errors: list[str] = []
                phone = phone_page(browser, errors)
                sent: list[bytes] = []  # what the page published, to count its resends
                phone.on(
                    "websocket",
                    lambda socket: socket.on(
                        "framesent",
                        lambda frame: sent.append(
                            frame if isinstance(frame, bytes) else frame.encode()
                        ),
                    ),
                )
                code = _join_code(bridge.http_port, operator)
                phone.goto(f"http://127.0.0.1:{bridge.http_port}/?game=main&code={code}")
                phone.get_by_test_id("name").fill("Alice")
                phone.get_by_test_id("join").click()
                connection = phone.get_by_test_id("connection")
                expect(connection).to_have_text("connected", timeout=WAIT_MS)
                phone.get_by_test_id("sit-1").click()
                expect(phone.get_by_test_id("seat-1")).to_have_attribute("data-mine", "true")
                assert bob.send({"type": "join", "name": "Bob"}, timeout=30)["ok"]
                phone.get_by_test_id("start").click()

                # a round before the failure: versions 1-2 joins, 3 start, 4-5 the turns
                _end_turn(phone, 5)
                assert bob.state(min_version=4, timeout=30)["current_player_id"] == 2
                assert bob.send({"type": "end_turn", "points": 1}, timeout=30)["ok"]
                expect(phone.get_by_test_id("status")).to_have_text("Your turn!", timeout=WAIT_MS)
                pi.screen.wait_text("ALICE'S TURN", "version 5", timeout=60)

                # kill -9 of the active service; the phone taps at once, without a reload
                mark, b_lines = len(watcher.messages), len(b.lines)
                killed_at = time.monotonic()
                a.kill()
                frames = len(sent)
                _end_turn(phone, 1, applied_within_ms=FAILOVER_WAIT_MS)
                applied_after = time.monotonic() - killed_at
                copies = [
                    json.loads(m.group()) for f in sent[frames:] for m in _END_TURN.finditer(f)
                ]
                assert copies, "the page published no end_turn"
                assert all(c == copies[0] for c in copies), copies  # one request_id
                applied = bob.state(min_version=6, timeout=60)
                status = watcher.wait_for(_online("b"), 60, after=mark).json()
                took_over = b.wait_line("tablehub ready", after=b_lines, timeout=60)
                assert status["epoch"] > first["epoch"], (first, status)
                assert applied["version"] == 6, applied
                assert applied["current_player_id"] == 2, applied
                assert [p["score"] for p in applied["players"]] == [6, 1], applied
                expect(phone.get_by_test_id("message")).to_have_text("", timeout=WAIT_MS)
                expect(connection).to_have_text("connected", timeout=WAIT_MS)
                # the Pi follows the new active service and the game: live, not stale
                _pi_follows(
                    pi, watcher, "BOB'S TURN", "version 6", after=mark, at_least=status["epoch"]
                )

                # the game goes on: Bob, then the phone again, whose tap is followed at
                # once by kill -9 of b (before or after b stored it: either way it is
                # applied once, by b or, resent, by a, started again as the standby)
                a.start().wait_line("tablehub standby")
                assert bob.send({"type": "end_turn", "points": 2}, timeout=30)["ok"]
                mark, a_lines = len(watcher.messages), len(a.lines)
                tapped_at = time.monotonic()
                _end_turn(phone, 5, applied_within_ms=FAILOVER_WAIT_MS, after_tap=b.kill)
                second_after = time.monotonic() - tapped_at
                final = bob.state(min_version=8, timeout=60)
                assert [p["score"] for p in final["players"]] == [11, 3], final
                again = watcher.wait_for(_online("a"), 60, after=mark).json()
                a.wait_line("tablehub ready", after=a_lines, timeout=60)
                assert again["epoch"] > status["epoch"], (status, again)
                expect(phone.get_by_test_id("message")).to_have_text("", timeout=WAIT_MS)
                _pi_follows(
                    pi, watcher, "BOB'S TURN", "version 8", after=mark, at_least=again["epoch"]
                )

                # the Pi's pause button, pressed while a is stopped, then kill -9 of a (b
                # back as the standby): the Pi sends it again until b answers; applied once
                b.start().wait_line("tablehub standby")
                mark, b_lines = len(watcher.messages), len(b.lines)
                a.signal(signal.SIGSTOP)  # a gets the press, if at all, but never answers
                table.press_pause()
                wait_until(lambda: "sent pause" in caplog.text, 60, what="the Pi's pause sent")
                pressed_at = time.monotonic()
                a.kill()
                pi.screen.wait_text("PAUSED", absent=("NOT LIVE",), timeout=120)
                paused_after = time.monotonic() - pressed_at
                expect(phone.get_by_test_id("status")).to_have_text("Paused", timeout=WAIT_MS)
                third = watcher.wait_for(_online("b"), 60, after=mark).json()
                b.wait_line("tablehub ready", after=b_lines, timeout=60)
                assert third["epoch"] > again["epoch"], (again, third)
                _pi_follows(pi, watcher, "PAUSED", "version 9", after=mark, at_least=third["epoch"])
                assert bob.state(min_version=9, timeout=60)["status"] == "paused"
                assert "no reply to pause" in caplog.text  # sent again, the same request
                script_errors = [e for e in errors if e.startswith("page error")]
                assert script_errors == [], script_errors
                browser.close()

            entries = _history(cluster)
            assert [e.version for e in entries] == list(range(1, 10))
            kinds = [e.command.type for e in entries]
            assert kinds == ["join", "join", "start", *["end_turn"] * 5, "pause"], kinds
            assert entries[-1].actor.client_id == "pi", entries[-1]
            rids = [e.command.request_id for e in entries]
            assert all(n == 1 for n in Counter(rids).values()), rids
            assert entries[5].epoch == status["epoch"], entries[5]
            assert entries[8].epoch == third["epoch"], entries[8]
            print(
                f"\nkill -9 of the active service -> the phone's end_turn applied (page shows"
                f" it): {applied_after:.2f} s, sent {len(copies)} time(s) (one request_id);"
                f" b ready: {took_over.at - killed_at:.2f} s; a tap followed by kill -9 of b:"
                f" applied, as the page shows, {second_after:.2f} s after the tap; the Pi's"
                f" pause pressed to a stopped a, then kill -9 of a: paused on its screen"
                f" {paused_after:.2f} s after the kill"
            )
