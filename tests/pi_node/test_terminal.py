"""The table screen in a real terminal: ``pi-node`` under tmux against a real hub.

tmux (Debian's) gives pi-node a real pty of a given size; ``capture-pane`` reads what a
person would see. At 120x40 the QR code must be there whole and decode (zbarimg, Debian's
zbar-tools, reads it from the screen drawn as pixels: 8x16 per character cell, as on the
console); resized to 80x24 (SIGWINCH) it must give way to the link and code in text.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.pi_node.conftest import add_display_user
from tests.support.hub import REPO, HubProcess

CELL_WIDTH, CELL_HEIGHT = 8, 16
"""A console character cell in pixels (the 8x16 fonts)."""
JOIN_PAGE = "http://192.168.1.20:8080/"


class Tmux:
    """A tmux server of our own (its own socket), one session running one command."""

    def __init__(self, socket_dir: Path) -> None:
        self.base = ["tmux", "-S", str(socket_dir / "tmux.sock"), "-f", "/dev/null"]

    def run(self, *args: str) -> str:
        done = subprocess.run(
            [*self.base, *args], capture_output=True, text=True, timeout=10, check=True
        )
        return done.stdout

    def start(self, command: str, width: int, height: int) -> int:
        """Start ``command`` in a ``width`` x ``height`` window; returns its pid."""
        self.run("new-session", "-d", "-s", "t", "-x", str(width), "-y", str(height), command)
        return int(self.run("display-message", "-p", "-t", "t", "#{pane_pid}").strip())

    def resize(self, width: int, height: int) -> None:
        self.run("resize-window", "-t", "t", "-x", str(width), "-y", str(height))

    def screen(self) -> str:
        return self.run("capture-pane", "-p", "-t", "t")

    def wait_screen(self, ready: Callable[[str], object], timeout: float = 30.0) -> str:
        deadline = time.monotonic() + timeout
        while True:
            text = self.screen()
            if ready(text):
                return text
            if time.monotonic() > deadline:
                msg = f"the terminal did not get there in {timeout} s; it shows:\n{text}"
                raise TimeoutError(msg)
            time.sleep(0.2)

    def kill_server(self) -> None:
        subprocess.run([*self.base, "kill-server"], capture_output=True, timeout=10, check=False)


@pytest.fixture
def tmux(tmp_path: Path) -> Iterator[Tmux]:
    for tool, package in (("tmux", "tmux"), ("zbarimg", "zbar-tools")):
        assert shutil.which(tool), f"{tool} is missing: make system-deps installs {package}"
    server = Tmux(tmp_path)
    try:
        yield server
    finally:
        server.kill_server()


def _decode_qr(screen: str, tmp_path: Path) -> list[str]:
    """The screen as a picture (a full block is a black cell, anything else white),
    read by a real QR decoder."""
    lines = screen.splitlines()
    width = max(len(line) for line in lines) * CELL_WIDTH
    rows = []
    for line in lines:
        cells = "".join("1" * CELL_WIDTH if ch == "█" else "0" * CELL_WIDTH for ch in line)
        rows += [cells.ljust(width, "0")] * CELL_HEIGHT
    image = tmp_path / "screen.pbm"
    image.write_text(f"P1\n{width} {len(rows)}\n" + "\n".join(rows) + "\n")
    done = subprocess.run(
        ["zbarimg", "--quiet", "--raw", str(image)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    return done.stdout.split()


def test_the_table_screen_in_a_real_terminal(tmp_path: Path, tmux: Tmux) -> None:
    data_dir = tmp_path / "var"
    with (
        HubProcess(data_dir) as hub,
        hub.client("alice", presence=True) as alice,
        hub.client("bob", presence=True) as bob,
    ):
        password = add_display_user(data_dir)
        assert alice.send({"type": "join", "name": "Alice Liddell"})["ok"]
        assert bob.send({"type": "join", "name": "Bob"})["ok"]
        assert alice.send({"type": "start", "turn_seconds": 300})["ok"]
        assert alice.send({"type": "end_turn", "points": 7})["ok"]
        log = tmp_path / "pi-node.log"
        command = " ".join(
            shlex.quote(part)
            for part in (
                "env",
                "-u",  # pytest exports its own terminal's size, which rich would take
                "COLUMNS",
                "-u",
                "LINES",
                f"PI_NODE_PASSWORD={password}",
                str(REPO / ".venv" / "bin" / "pi-node"),
                "--broker",
                f"mqtt://pi@127.0.0.1:{hub.mqtt_port}",
                "--screen",
                "stdout",
                "--gpio",
                "none",
                "--join-url",
                JOIN_PAGE,
                "--cache",
                str(tmp_path / "cache.json"),
            )
        )
        pid = tmux.start(f"cd {shlex.quote(str(REPO))} && exec {command} 2>>{log}", 120, 40)
        try:
            text = tmux.wait_screen(
                lambda t: "BOB'S TURN" in t and "█" in t and re.search(r"code +[0-9]{6}", t)
            )
            for shown in ("Alice", "Liddell", "Bob", "round 1 of 5", "● connected", "hub online"):
                assert shown in text, text  # (beside the QR code a long name wraps, whole)
            alice_line = next(line for line in text.splitlines() if "Alice" in line)
            assert " 7 " in alice_line
            assert " left" in text  # the turn clock (4:5x left)
            decoded = _decode_qr(text, tmp_path)
            assert len(decoded) == 1, text
            assert decoded[0].startswith(JOIN_PAGE + "?game=main&code=")
            code = decoded[0].rsplit("=", 1)[1]
            assert code in text

            # paused, the clock stands still: nothing but the resize (SIGWINCH) redraws
            assert bob.send({"type": "pause"})["ok"]
            tmux.wait_screen(lambda t: "(PAUSED)" in t)
            tmux.resize(80, 24)
            small = tmux.wait_screen(lambda t: "█" not in t and " ".join(code) in t)
            assert len(small.splitlines()) <= 24
            assert all(len(line) <= 80 for line in small.splitlines())
            for shown in ("BOB'S TURN", "Alice Liddell", "Bob", JOIN_PAGE):
                assert shown in small, small
            alice_line = next(line for line in small.splitlines() if "Alice Liddell" in line)
            assert " 7 " in alice_line
            assert not _decode_qr(small, tmp_path)
        finally:
            os.kill(pid, signal.SIGTERM)
    assert "Traceback" not in log.read_text()
