"""The Pi node under test: in-process (a thread running ``pi_node.app.run``) against a real
hub or a plain Mosquitto (tests.support.mosquitto.PlainMosquitto) on free ports, with
gpiozero's mock pins."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import pytest
from gpiozero.pins.mock import MockFactory

from hub.protocol import Snapshot
from pi_node.app import run
from pi_node.hardware import GpioHardware, Hardware, NoHardware
from pi_node.render import TableView, render_text
from pi_node.sdnotify import Notifier
from pi_node.settings import PiNodeSettings, Pins
from tests.support.cli import run_cli

PINS = Pins(start=17, pause=27, led_seat1=23, led_seat2=24, pull_up=True, bounce_time=0)


@pytest.fixture(autouse=True)
def _no_outside_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """No PI_NODE_* variables from the outside, and no systemd."""
    for name in list(os.environ):
        if name.upper().startswith("PI_NODE_") or name in ("NOTIFY_SOCKET", "JOURNAL_STREAM"):
            monkeypatch.delenv(name)


def add_display_user(data_dir: Path, name: str = "pi") -> str:
    """``hub users add NAME --role display``; returns the password it printed."""
    done = run_cli("users", "add", name, "--role", "display", "--data-dir", str(data_dir))
    assert done.returncode == 0, done.stderr
    found = re.search(r"^password: (\S+)$", done.stdout, flags=re.MULTILINE)
    assert found is not None, done.stdout
    return found.group(1)


def node_settings(port: int, password: str, tmp_path: Path, **extra: Any) -> PiNodeSettings:
    values: dict[str, Any] = {
        "broker": f"mqtt://pi:{password}@127.0.0.1:{port}",
        "cache_path": tmp_path / "pi-node-cache.json",
        "join_url": "http://127.0.0.1:8080/",
        "gpio": "none",
        "screen": "off",
        "pins": PINS,
        "keepalive": 5,
        "reconnect_min": 0.05,
        "reconnect_max": 0.5,
    } | extra
    return PiNodeSettings(**values)


class RecordingScreen:
    """A Screen that keeps the last view it was shown."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self.view: TableView | None = None
        self.shown = 0

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None

    def show(self, view: TableView) -> None:
        with self._cond:
            self.view = view
            self.shown += 1
            self._cond.notify_all()

    def text(self) -> str:
        with self._cond:
            return "" if self.view is None else render_text(self.view)

    def wait_for(self, predicate: Callable[[TableView, str], bool], timeout: float = 10.0) -> str:
        """The screen's text once ``predicate(view, text)`` holds."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                if self.view is not None:
                    text = render_text(self.view)
                    if predicate(self.view, text):
                        return text
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    msg = f"the screen did not get there in {timeout} s; it shows:\n{text}"
                    raise TimeoutError(msg)
                self._cond.wait(remaining)

    def wait_text(self, *parts: str, absent: tuple[str, ...] = (), timeout: float = 10.0) -> str:
        return self.wait_for(
            lambda _v, text: all(p in text for p in parts) and not any(a in text for a in absent),
            timeout,
        )


class RunningNode:
    """``with RunningNode(settings) as node:`` -> ``node.screen``; the node runs in a thread
    with its own event loop, exactly as ``pi-node`` runs it."""

    def __init__(self, settings: PiNodeSettings, hardware: Hardware | None = None) -> None:
        self.settings = settings
        self.hardware = hardware or NoHardware()
        self.screen = RecordingScreen()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._started = threading.Event()
        self._error: BaseException | None = None

    def _main(self) -> None:
        try:
            asyncio.run(self._run())
        except BaseException as exc:  # handed to the test thread in __exit__
            self._error = exc
            self._started.set()

    async def _run(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        self._started.set()
        await run(
            self.settings,
            self._stop,
            hardware=self.hardware,
            screen=self.screen,
            notifier=Notifier(None),
        )

    def __enter__(self) -> Self:
        self._thread = threading.Thread(target=self._main, name="pi-node-under-test")
        self._thread.start()
        assert self._started.wait(10)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def stop(self, timeout: float = 5.0) -> float:
        """Set the stop flag and wait for the node to end; returns the seconds it took."""
        started = time.monotonic()
        if self._loop is not None and self._stop is not None and not self._loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop already ended
                self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(timeout)
            assert not self._thread.is_alive(), "the node did not stop"
        if self._error is not None:
            raise self._error
        return time.monotonic() - started


class MockTable:
    """gpiozero buttons and LEDs on mock pins: press buttons, read LEDs."""

    def __init__(self, pins: Pins = PINS) -> None:
        self.pins = pins
        self.factory = MockFactory()
        self.hardware = GpioHardware(pins, self.factory)

    def press(self, pin: int | str) -> None:
        mock = self.factory.pin(pin)
        if self.pins.pull_up:
            mock.drive_low()
            mock.drive_high()
        else:
            mock.drive_high()
            mock.drive_low()

    def press_start(self) -> None:
        self.press(self.pins.start)

    def press_pause(self) -> None:
        self.press(self.pins.pause)

    def led(self, seat: int) -> bool:
        pin = self.pins.led_seat1 if seat == 1 else self.pins.led_seat2
        return bool(self.factory.pin(pin).state)

    def leds(self) -> tuple[bool, bool]:
        return (self.led(1), self.led(2))


@pytest.fixture
def table() -> Iterator[MockTable]:
    yielded = MockTable()
    yield yielded
    yielded.factory.close()


def snapshot(**changes: Any) -> Snapshot:
    """A valid snapshot: Alice and Bob, round 2 of 5, seat 1 to move, unless changed."""
    data: dict[str, Any] = {
        "schema": 1,
        "game": "main",
        "version": 17,
        "epoch": 3,
        "status": "in_progress",
        "p1_name": "Alice",
        "p2_name": "Bob",
        "current_round": 2,
        "max_rounds": 5,
        "current_player_id": 1,
        "players": [
            {"id": 1, "name": "Alice", "client_id": "alice", "connected": True, "score": 12},
            {"id": 2, "name": "Bob", "client_id": "bob", "connected": False, "score": 9},
        ],
        "winner_id": None,
        "updated_at": "2026-11-24T08:09:10.120Z",
    }
    return Snapshot.model_validate(data | changes)
