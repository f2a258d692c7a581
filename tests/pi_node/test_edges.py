"""The node's small edges, each against the real thing it touches: the wire decoding, the
cache file, systemd's notify socket, gpiozero's mock pins, the log format."""

from __future__ import annotations

import logging
import os
import socket
from pathlib import Path

import pytest
from gpiozero.pins.mock import MockFactory

from hub.protocol import DecodeError, Event, Reply, Status, Topics, encode
from pi_node.__main__ import JournalFormatter
from pi_node.cache import SnapshotCache
from pi_node.hardware import ButtonAction, GpioHardware, Light
from pi_node.screen import screen_target
from pi_node.sdnotify import Notifier
from pi_node.settings import Pins
from pi_node.wire import JoinCodeUpdate, Subscriptions, decode_join_code, decode_update, join_topic
from tests.pi_node.conftest import PINS, MockTable, snapshot
from tests.support.waiting import wait_until

SUBS = Subscriptions.of(Topics(), "main", "pi")

# --- wire ---------------------------------------------------------------------------------


def test_the_topics_a_node_follows() -> None:
    assert SUBS.filters == (
        "tablehub/status",
        "tablehub/games/main/state",
        "tablehub/games/main/events",
        "tablehub/games/main/join",
        "tablehub/clients/pi/reply",
    )
    assert SUBS.presence == "tablehub/clients/pi/presence"
    assert join_topic(Topics("a/b"), "g1") == "a/b/games/g1/join"


def test_decode_update_by_topic() -> None:
    state = snapshot()
    assert decode_update(SUBS, SUBS.state, encode(state)) == state
    status = decode_update(
        SUBS,
        SUBS.status,
        b'{"state":"online","epoch":2,"version":"0.1.0","started_at":"2026-11-24T08:00:00.000Z"}',
    )
    assert isinstance(status, Status)
    assert status.epoch == 2
    event = decode_update(
        SUBS,
        SUBS.events,
        b'{"game":"main","version":3,"type":"start","by":"pi","at":"2026-11-24T08:00:00.000Z"}',
    )
    assert isinstance(event, Event)
    reply = decode_update(SUBS, SUBS.reply, b'{"request_id":"r","ok":true,"version":3}')
    assert isinstance(reply, Reply)
    assert decode_update(SUBS, "tablehub/stats", b"{}") is None


@pytest.mark.parametrize(
    ("topic", "payload"),
    [
        (SUBS.state, b"\xff"),
        (SUBS.state, b"nope"),
        (SUBS.state, b'{"schema":1}'),
        (SUBS.state, b""),
        (SUBS.status, b'{"state":"maybe","epoch":1,"version":"x","started_at":"x"}'),
        (SUBS.reply, b'{"ok":true}'),
        (SUBS.join, b"two words"),
        (SUBS.join, b'{"code":"x y"}'),
        (SUBS.join, b"[1]"),
        (SUBS.join, b'{"code":"4711"}'),  # the contract's JoinCode names its game
        (SUBS.join, b'{"game":"main","code":"AB-12"}'),  # digits only
        (SUBS.join, b"4711"),
    ],
)
def test_garbage_raises_decode_error(topic: str, payload: bytes) -> None:
    with pytest.raises(DecodeError):
        decode_update(SUBS, topic, payload)


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        (b'{"game":"main","code":"4711"}', "4711"),
        (b'{"game":"main","code":"123456"}', "123456"),
        (b"", None),
        (b"  ", None),
    ],
)
def test_join_codes(payload: bytes, code: str | None) -> None:
    assert decode_join_code(payload) == JoinCodeUpdate(code)


# --- cache --------------------------------------------------------------------------------


def test_cache_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "cache.json"
    cache = SnapshotCache(path)
    assert cache.load("main") is None
    state = snapshot()
    assert cache.save(state, "4711")
    loaded = SnapshotCache(path).load("main")
    assert loaded is not None
    assert loaded.snapshot == state
    assert loaded.join_code == "4711"
    assert SnapshotCache(path).load("other") is None  # another game's cache is not shown
    assert not list(path.parent.glob(".*.tmp"))


def test_cache_writes_only_changes(tmp_path: Path) -> None:
    path = tmp_path / "cache.json"
    cache = SnapshotCache(path)
    cache.save(snapshot(), None)
    path.write_text("overwritten")  # a second identical save must not touch the file
    cache.save(snapshot(), None)
    assert path.read_text() == "overwritten"
    cache.save(snapshot(version=18), None)
    loaded = SnapshotCache(path).load("main")
    assert loaded is not None
    assert loaded.snapshot.version == 18


@pytest.mark.parametrize("content", [b"", b"garbage", b'{"snapshot": {}}', b"\xff\xfe"])
def test_a_broken_cache_is_ignored(
    tmp_path: Path, content: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "cache.json"
    path.write_bytes(content)
    assert SnapshotCache(path).load("main") is None
    assert "ignoring the unreadable cache" in caplog.text


def test_an_unwritable_cache_is_logged_not_raised(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert not SnapshotCache(blocker / "cache.json").save(snapshot(), None)
    assert "cannot write the cache" in caplog.text


# --- sd_notify ----------------------------------------------------------------------------


def test_sd_notify_sends_datagrams(tmp_path: Path) -> None:
    path = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind(str(path))
        server.settimeout(5)
        env = {"NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "3000000"}
        with Notifier.from_env(env) as notify:
            assert notify.enabled
            assert notify.watchdog_interval == 1.5
            notify.ready("live\nnow")
            notify.watchdog()
            notify.stopping()
        received = [server.recv(1024).decode() for _ in range(3)]
    assert received == ["READY=1\nSTATUS=live now", "WATCHDOG=1", "STOPPING=1\nSTATUS=stopping"]


def test_sd_notify_abstract_socket() -> None:
    name = f"pi-node-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind("\0" + name)
        server.settimeout(5)
        with Notifier.from_env({"NOTIFY_SOCKET": "@" + name}) as notify:
            notify.status("hello")
        assert server.recv(1024) == b"STATUS=hello"


def test_sd_notify_without_systemd_is_a_no_op(tmp_path: Path) -> None:
    with Notifier.from_env({}) as notify:
        assert not notify.enabled
        assert notify.watchdog_interval is None
        notify.ready("x")
        notify.watchdog()
    # the watchdog is someone else's when WATCHDOG_PID names another process
    other_pid = str(os.getpid() + 1)
    other = Notifier.from_env({"WATCHDOG_USEC": "1000000", "WATCHDOG_PID": other_pid})
    assert other.watchdog_interval is None


def test_sd_notify_failures_are_logged_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with Notifier.from_env({"NOTIFY_SOCKET": str(tmp_path / "nobody")}) as notify:
        notify.status("a")
        notify.status("b")
    assert caplog.text.count("cannot notify systemd") == 1


# --- hardware -----------------------------------------------------------------------------


def test_mock_buttons_and_leds() -> None:
    table = MockTable()
    pressed: list[ButtonAction] = []
    with table.hardware as hardware:
        hardware.listen(pressed.append)
        table.press_start()
        table.press_pause()
        table.press_start()
        assert pressed == [ButtonAction.START_NEXT, ButtonAction.PAUSE, ButtonAction.START_NEXT]
        hardware.show((Light.ON, Light.OFF))
        assert table.leds() == (True, False)
        hardware.show((Light.OFF, Light.ON))
        assert table.leds() == (False, True)
        hardware.show((Light.OFF, Light.BLINK))
        seen: set[bool] = set()

        def blinked() -> bool:
            seen.add(table.led(2))
            return seen == {True, False}

        wait_until(blinked, what="a blink")
        hardware.show((Light.OFF, Light.OFF))
        assert table.leds() == (False, False)
    table.factory.close()


def test_buttons_wired_to_3v3_press_high() -> None:
    pins = PINS.model_copy(update={"pull_up": False})
    table = MockTable(pins)
    pressed: list[ButtonAction] = []
    with table.hardware as hardware:
        hardware.listen(pressed.append)
        table.press_pause()
    assert pressed == [ButtonAction.PAUSE]
    table.factory.close()


def test_no_usable_gpio_runs_without(caplog: pytest.LogCaptureFixture) -> None:
    factory = MockFactory()
    bad = Pins(start="NO-SUCH-PIN")
    with GpioHardware(bad, factory, optional=True) as hardware:
        assert not hardware.active
        hardware.show((Light.ON, Light.OFF))  # a no-op
    assert "running without buttons and LEDs" in caplog.text
    with pytest.raises(Exception, match="NO-SUCH-PIN"), GpioHardware(bad, factory):
        pass
    factory.close()


# --- logs, screen -------------------------------------------------------------------------


def test_journal_format_carries_the_priority() -> None:
    formatter = JournalFormatter()

    def line(level: int, msg: str) -> str:
        record = logging.LogRecord("pi_node.x", level, __file__, 1, msg, None, None)
        return formatter.format(record)

    assert line(logging.INFO, "hello") == "<6>pi_node.x: hello"
    assert line(logging.WARNING, "w") == "<4>pi_node.x: w"
    assert line(logging.ERROR, "two\nlines") == "<3>pi_node.x: two\n lines"
    assert line(logging.DEBUG, "d") == "<7>pi_node.x: d"


@pytest.mark.parametrize(
    ("setting", "tty", "systemd", "expected"),
    [
        ("auto", True, False, "stdout"),
        ("auto", False, False, None),
        ("auto", True, True, None),
        ("off", True, False, None),
        ("stdout", False, True, "stdout"),
        ("/dev/tty1", False, True, "/dev/tty1"),
    ],
)
def test_screen_target(setting: str, tty: bool, systemd: bool, expected: str | None) -> None:
    assert screen_target(setting, stdout_is_tty=tty, under_systemd=systemd) == expected
