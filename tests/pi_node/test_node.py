"""The node's logic with its outputs faked: inputs in order, what it shows and sends."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from hub.protocol import Reply, Status, Topics, encode
from pi_node.cache import SnapshotCache
from pi_node.hardware import ButtonAction, FakeHardware, Light
from pi_node.link import Inbound, LinkDown, LinkRefused, LinkUp
from pi_node.node import (
    GIVE_UP_AFTER,
    REPLY_TIMEOUT,
    RESEND_MAX_INTERVAL,
    TAKEOVER_WINDOW,
    Node,
    NodeInput,
    Pressed,
    Redraw,
    Tick,
)
from pi_node.render import LinkState
from pi_node.sdnotify import Notifier
from pi_node.wire import Subscriptions
from tests.pi_node.conftest import RecordingScreen, snapshot

TOPICS = Topics()
SUBS = Subscriptions.of(TOPICS, "main", "pi")
COMMANDS = TOPICS.game_command("main", "pi")


class FakeOutbox:
    def __init__(self) -> None:
        self.connected = True
        self.established = 0
        self.sent: list[tuple[str, dict[str, object]]] = []

    def establish(self) -> None:
        self.established += 1

    def publish(self, topic: str, payload: bytes, *, qos: int = 1) -> bool:
        if self.connected:
            self.sent.append((topic, json.loads(payload)))
        return self.connected


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Harness:
    def __init__(self, tmp_path: Path) -> None:
        self.outbox = FakeOutbox()
        self.hardware = FakeHardware()
        self.screen = RecordingScreen()
        self.clock = Clock()
        self.wall = datetime(2026, 11, 24, 8, 9, 12, 345_000, tzinfo=UTC)
        self.cache = SnapshotCache(tmp_path / "cache.json")
        self.node = Node(
            game="main",
            identity="pi",
            subs=SUBS,
            command_topic=COMMANDS,
            join_link=lambda code, hub: hub or f"http://hub/?game=main&code={code}",
            outbox=self.outbox,
            hardware=self.hardware,
            screen=self.screen,
            cache=self.cache,
            notifier=Notifier(None),
            clock=self.clock,
            wall_clock=lambda: self.wall,
        )

    def feed(self, *items: NodeInput) -> None:
        async def go() -> None:
            for item in items:
                await self.node.handle(item)

        asyncio.run(go())

    def live(self, **changes: object) -> None:
        """Connected, with the hub online and a live snapshot."""
        status = Status.model_validate(
            {"state": "online", "epoch": 3, "version": "x", "started_at": "2026-11-24T08:00:00Z"}
        )
        self.feed(
            LinkUp(),
            Inbound(SUBS.status, encode(status), True),
            Inbound(SUBS.state, encode(snapshot(**changes)), True),
        )


@pytest.fixture
def harness(tmp_path: Path) -> Harness:
    return Harness(tmp_path)


def test_a_live_snapshot_lights_the_turn_and_is_cached(harness: Harness) -> None:
    harness.node.start()
    assert harness.node.view.snapshot is None
    harness.live()
    assert harness.outbox.established == 1
    view = harness.node.view
    assert view.live
    assert view.link is LinkState.CONNECTED
    assert harness.hardware.lights == (Light.ON, Light.OFF)
    assert harness.node.status_line == ("live: game main v17 in_progress round 2/5, seat 1 to move")
    cached = harness.cache.load("main")
    assert cached is not None
    assert cached.snapshot == view.snapshot


def test_losing_the_link_makes_it_stale_and_turns_the_lights_off(harness: Harness) -> None:
    harness.live()
    harness.feed(LinkDown("Connection refused", unreachable=True))
    view = harness.node.view
    assert view.stale
    assert view.snapshot is not None
    assert harness.hardware.lights == (Light.OFF, Light.OFF)
    assert harness.node.status_line == "hub unreachable, retrying; showing cached v17"
    # reconnected: stale until the retained snapshot arrives again
    harness.feed(LinkUp())
    assert harness.node.view.stale
    harness.feed(Inbound(SUBS.state, encode(snapshot()), True))
    assert not harness.node.view.stale


def test_a_refused_login_stays_refused_when_the_broker_hangs_up(harness: Harness) -> None:
    harness.feed(LinkRefused("Not authorized"), LinkDown("Unspecified error", unreachable=False))
    assert harness.node.view.link is LinkState.REFUSED
    assert harness.node.status_line == "login refused: Not authorized"
    harness.feed(LinkDown("Connection refused", unreachable=True))
    after: LinkState = harness.node.view.link
    assert after is LinkState.DOWN


def test_the_cache_is_shown_stale_at_start(harness: Harness, tmp_path: Path) -> None:
    SnapshotCache(tmp_path / "cache.json").save(snapshot(version=5), "4711")
    harness.node.start()
    view = harness.node.view
    assert view.stale
    assert view.snapshot is not None
    assert view.snapshot.version == 5
    assert view.join_code == "4711"
    assert view.join_url is not None
    assert view.join_url.endswith("code=4711")
    assert harness.hardware.lights == (Light.OFF, Light.OFF)
    assert harness.screen.view == view


def test_a_press_sends_one_command_and_waits_for_its_reply(harness: Harness) -> None:
    harness.live(status="not_started", current_round=0)
    harness.feed(Pressed(ButtonAction.START_NEXT), Pressed(ButtonAction.START_NEXT))
    assert len(harness.outbox.sent) == 1  # the second press waits for the first's reply
    topic, command = harness.outbox.sent[0]
    assert topic == COMMANDS
    assert command["type"] == "start"
    assert command["expected_version"] == 17
    request_id = command["request_id"]
    assert isinstance(request_id, str)

    refused = Reply.rejected(request_id, "not_enough_players", "both seats must be taken")  # type: ignore[arg-type]
    harness.feed(Inbound(SUBS.reply, encode(refused), False))
    assert harness.node.view.notice == "start refused: both seats must be taken"
    harness.clock.now += 10
    harness.feed(Tick())
    assert harness.node.view.notice is None
    harness.feed(Pressed(ButtonAction.START_NEXT))
    assert len(harness.outbox.sent) == 2


def test_an_unanswered_command_is_sent_again_with_backoff(harness: Harness) -> None:
    harness.live(status="paused")
    harness.feed(Pressed(ButtonAction.START_NEXT))
    first = harness.outbox.sent[-1][1]
    assert first["type"] == "resume"
    started = harness.clock.now
    resent_at: list[float] = []
    while harness.clock.now - started < GIVE_UP_AFTER + RESEND_MAX_INTERVAL:
        harness.clock.now += 0.5
        sent = len(harness.outbox.sent)
        harness.feed(Tick())
        if harness.node.view.notice == "no answer from the hub: resume may not be done":
            break
        harness.feed(Pressed(ButtonAction.START_NEXT))  # the press waits
        if len(harness.outbox.sent) > sent:
            resent_at.append(harness.clock.now - started)
            assert harness.outbox.sent[-1][1] == first  # the same command, same request id
            assert harness.node.view.notice == "sending resume again..."
    assert harness.clock.now - started == GIVE_UP_AFTER
    gaps = [b - a for a, b in zip([0.0, *resent_at], resent_at, strict=False)]
    assert gaps[:3] == [REPLY_TIMEOUT, 2 * REPLY_TIMEOUT, RESEND_MAX_INTERVAL]
    assert set(gaps[3:]) == {RESEND_MAX_INTERVAL}
    assert resent_at[-1] < GIVE_UP_AFTER
    harness.feed(Pressed(ButtonAction.START_NEXT))  # given up: presses are taken again
    assert harness.outbox.sent[-1][1]["request_id"] != first["request_id"]


def test_a_reply_stops_the_resends(harness: Harness) -> None:
    harness.live(status="paused")
    harness.feed(Pressed(ButtonAction.START_NEXT))
    request_id = harness.outbox.sent[-1][1]["request_id"]
    harness.clock.now += REPLY_TIMEOUT
    harness.feed(Tick())
    assert len(harness.outbox.sent) == 2
    accepted = Reply.accepted(str(request_id), 18)
    harness.feed(Inbound(SUBS.reply, encode(accepted), False))
    assert harness.node.view.notice is None
    harness.feed(Inbound(SUBS.reply, encode(accepted), False))  # the resend's reply
    harness.clock.now += GIVE_UP_AFTER
    harness.feed(Tick())
    assert len(harness.outbox.sent) == 2


def test_resends_wait_for_the_link(harness: Harness) -> None:
    harness.live(status="paused")
    harness.feed(Pressed(ButtonAction.START_NEXT))
    harness.outbox.connected = False
    harness.feed(LinkDown("gone", unreachable=True))
    harness.clock.now += REPLY_TIMEOUT
    harness.feed(Tick())
    assert len(harness.outbox.sent) == 1
    harness.outbox.connected = True
    harness.clock.now += 2 * REPLY_TIMEOUT
    harness.feed(LinkUp(), Tick())
    assert len(harness.outbox.sent) == 2
    assert harness.outbox.sent[1] == harness.outbox.sent[0]


@pytest.mark.parametrize("why", ["link down", "hub offline", "stale", "send failed"])
def test_presses_are_not_sent_without_a_live_hub(harness: Harness, why: str) -> None:
    harness.live()
    if why == "link down":
        harness.feed(LinkDown("gone", unreachable=False))
    elif why == "hub offline":
        offline = Status.model_validate(
            {"state": "offline", "epoch": 3, "version": "x", "started_at": "2026-11-24T08:00:00Z"}
        )
        harness.feed(Inbound(SUBS.status, encode(offline), True))
    elif why == "stale":
        harness.feed(LinkUp())
    else:
        harness.outbox.connected = False
    harness.feed(Pressed(ButtonAction.PAUSE))
    assert harness.outbox.sent == []
    assert harness.node.view.notice == "the hub is not reachable: button ignored"


def test_malformed_messages_change_nothing(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    harness.live()
    before = harness.node.view
    harness.feed(
        Inbound(SUBS.state, b"{", True),
        Inbound(SUBS.status, b"[]", True),
        Inbound(SUBS.join, b"no spaces", True),
        Inbound("tablehub/something/else", b"whatever", False),
    )
    assert harness.node.view == before
    assert caplog.text.count("ignoring a malformed message") == 3


def test_a_hub_restart_is_logged(harness: Harness, caplog: pytest.LogCaptureFixture) -> None:
    harness.live()
    restarted = Status.model_validate(
        {"state": "online", "epoch": 4, "version": "x", "started_at": "2026-11-24T09:00:00Z"}
    )
    harness.feed(Inbound(SUBS.status, encode(restarted), True))
    assert harness.node.view.epoch == 4
    assert "the hub restarted (epoch 3 -> 4)" in caplog.text


# --- the screen's own inputs: the turn clock, resizes, the hub's join link, takeovers -----


def test_the_countdown_moves_each_second_without_messages(harness: Harness) -> None:
    harness.live(turn_seconds=30, turn_deadline="2026-11-24T08:09:40.000Z")
    assert harness.node.view.now == datetime(2026, 11, 24, 8, 9, 12, tzinfo=UTC)
    shown = harness.screen.shown
    harness.wall += timedelta(seconds=1)
    harness.feed(Tick())
    assert harness.node.view.now == datetime(2026, 11, 24, 8, 9, 13, tzinfo=UTC)
    assert harness.screen.shown == shown + 1
    assert "0:27 left" in harness.screen.text()


def test_without_a_clock_ticks_draw_nothing(harness: Harness) -> None:
    harness.live()
    shown = harness.screen.shown
    harness.wall += timedelta(seconds=5)
    harness.feed(Tick(), Tick())
    assert harness.screen.shown == shown


def test_a_resize_draws_again(harness: Harness) -> None:
    harness.live()
    shown = harness.screen.shown
    harness.feed(Redraw())
    assert harness.screen.shown == shown + 1


def test_the_join_link_comes_from_the_hub(harness: Harness) -> None:
    harness.live()
    link = "http://192.168.1.20:8080/?game=main&code=4711"
    payload = json.dumps({"game": "main", "code": "4711", "url": link}).encode()
    harness.feed(Inbound(SUBS.join, payload, True))
    assert (harness.node.view.join_code, harness.node.view.join_url) == ("4711", link)


def test_two_nodes_with_one_identity_are_named_as_such(harness: Harness) -> None:
    """The broker closes the older connection of a client id: short sessions, over and over."""
    harness.live()
    for _ in range(2):
        harness.clock.now += 1.0
        harness.feed(LinkDown("Unspecified error", unreachable=False))
        harness.clock.now += 0.5
        harness.feed(LinkUp())
    view = harness.node.view
    assert view.link is LinkState.TAKEN_OVER
    assert "another pi-node is logged in as pi" in harness.screen.text()
    assert "● connected" not in harness.screen.text()
    assert harness.node.status_line == "another pi-node is logged in as pi; backing off"
    # the other one went away: after a quiet while it is an ordinary connection again
    harness.clock.now += TAKEOVER_WINDOW + 1
    harness.feed(Tick())
    assert harness.node.view.link is LinkState.CONNECTED


def test_one_dropped_connection_is_not_a_takeover(harness: Harness) -> None:
    harness.live()
    harness.clock.now += 1.0
    harness.feed(LinkDown("Unspecified error", unreachable=False), LinkUp())
    assert harness.node.view.link is LinkState.CONNECTED
    harness.clock.now += 100.0  # a long session later, another drop
    harness.feed(LinkDown("Unspecified error", unreachable=False))
    after: LinkState = harness.node.view.link
    assert after is LinkState.DOWN
