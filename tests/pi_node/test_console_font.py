"""Every character the table screen draws is in the Linux console fonts a Pi has.

The systemd unit draws on /dev/tty1 with TERM=linux, in whatever font console-setup
loaded: Debian's console-setup-linux fonts (Lat15-*, Uni2-*, Uni3-*, the Terminus faces up
to TerminusBold32x16 among them). A character missing from the font shows as a blank or a
diamond, so the QR code would not scan. This reads each font's Unicode table (PSF1 or
PSF2, gzip'd) and checks every character of a full set of rendered screens against it.
"""

from __future__ import annotations

import gzip
import struct
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from hub.protocol import Snapshot
from pi_node.render import CONSOLE_GLYPHS, LinkState, TableView, printable, render_text
from tests.pi_node.conftest import snapshot

FONT_DIR = Path("/usr/share/consolefonts")
FAMILIES = ("Lat15-", "Uni2-", "Uni3-")
"""console-setup's codesets a Pi with a Western or "Unicode" console uses (Lat15 is what
CODESET=guess gives for English and Western European locales)."""
NOW = datetime(2026, 11, 24, 8, 9, 12, tzinfo=UTC)
URL = "http://192.168.1.20:8080/?game=main&code=482913"


def _psf_chars(path: Path) -> frozenset[str]:
    """The characters a PSF1/PSF2 font maps to a glyph (single code points, not sequences)."""
    data = gzip.decompress(path.read_bytes())
    chars: set[str] = set()
    if data[:2] == b"\x36\x04":  # PSF1: 256/512 glyphs, a UCS-2 table, 0xFFFF ends a glyph
        mode, size = data[2], data[3]
        assert mode & 0x06, f"{path.name} has no Unicode table"
        table = data[4 + (512 if mode & 0x01 else 256) * size :]
        in_sequence = False
        for (value,) in struct.iter_unpack("<H", table[: len(table) // 2 * 2]):
            if value == 0xFFFF:
                in_sequence = False
            elif value == 0xFFFE:
                in_sequence = True
            elif not in_sequence:
                chars.add(chr(value))
        return frozenset(chars)
    magic, _version, header, flags, length, size = struct.unpack_from("<6I", data)
    assert magic == 0x864AB572, f"{path.name} is not a PSF font"
    assert flags & 0x01, f"{path.name} has no Unicode table"
    for entry in data[header + length * size :].split(b"\xff"):  # UTF-8, 0xFE: sequences
        chars.update(entry.split(b"\xfe")[0].decode("utf-8"))
    return frozenset(chars)


@cache
def _fonts() -> dict[str, frozenset[str]]:
    paths = sorted(p for p in FONT_DIR.glob("*.psf.gz") if p.name.startswith(FAMILIES))
    return {path.name: _psf_chars(path) for path in paths}


def _views() -> list[TableView]:
    """A screen for every status, link state and join situation."""

    def live(game: Snapshot, **changes: Any) -> TableView:
        return TableView(
            game="main",
            join_url=changes.pop("join_url", URL),
            snapshot=game,
            live=True,
            link=LinkState.CONNECTED,
            hub_online=True,
            epoch=3,
            **changes,
        )

    clocked = snapshot(turn_seconds=30, turn_deadline="2026-11-24T08:09:40.000Z")
    empty_seat = snapshot(
        status="not_started",
        current_round=0,
        p2_name=None,
        players=[
            {"id": 1, "name": "Zoë Ångström", "client_id": "a", "connected": True, "score": 0},
            {"id": 2, "name": None, "client_id": None, "connected": False, "score": 0},
        ],
    )
    games = [
        clocked,
        snapshot(status="paused", turn_seconds=30, turn_remaining_ms=4200),
        snapshot(status="finished", winner_id=1),
        snapshot(status="finished", winner_id=None),
        snapshot(status="not_started", current_round=0),
        empty_seat,
        snapshot(p1_name="x" * 24),
    ]
    views = [live(game, join_code="482913", now=NOW) for game in games]
    views += [
        TableView(game="main", join_url=None, snapshot=None),
        TableView(game="main", join_url=URL, snapshot=clocked, link=LinkState.DOWN, now=NOW),
        TableView(game="main", join_url=URL, snapshot=clocked, link=LinkState.REFUSED),
        TableView(game="main", join_url=URL, snapshot=clocked, link=LinkState.TAKEN_OVER),
        live(clocked, join_url=URL + "&" + "x" * 60, notice="start refused: seat 2's turn"),
    ]
    return views


SIZES = [(80, 24), (120, 40), (120, 33), (160, 45), (240, 67)]
"""A plain console, the issue's terminal, 1080p in TerminusBold32x16 and in 8x16 fonts."""


@cache
def _drawn() -> frozenset[str]:
    chars: set[str] = set()
    for view in _views():
        for width, height in SIZES:
            chars.update(render_text(view, width=width, height=height))
    return frozenset(chars - {"\n"})


def test_the_fonts_are_installed() -> None:
    """console-setup-linux is a system dependency (`make system-deps` installs it)."""
    assert len(_fonts()) >= 60, (
        f"console fonts missing in {FONT_DIR}: apt install console-setup-linux"
    )


def test_the_screens_draw_a_qr_code_somewhere() -> None:
    """The character check below covers the QR code (not a screen without one)."""
    assert "█" in _drawn()


@pytest.mark.parametrize("font", sorted(_fonts()) or ["none"])
def test_every_drawn_character_is_in_the_font(font: str) -> None:
    have = _fonts()[font]
    missing = {char for char in _drawn() if char not in have}
    assert not missing, f"{font} lacks {sorted(missing)} ({[hex(ord(c)) for c in missing]})"


def test_the_glyphs_beyond_latin_1_are_in_every_font() -> None:
    for font, have in _fonts().items():
        assert set(CONSOLE_GLYPHS) <= have, font
        assert all(chr(code) in have for code in range(0x20, 0x7F)), font


def test_escape_sequences_are_dropped_whole() -> None:
    assert printable("\x1b[2J\x1b[1;31mEve\x1b]0;title\x07!") == "Eve!"


def test_names_are_reduced_to_what_the_console_can_draw() -> None:
    assert printable("Zoë 😀") == "Zoë ?"
    assert printable("Ελένη") == "?????"


@pytest.mark.parametrize(
    "hostile",
    [
        "\x1b[2J\x1b[HPWNED",  # clear the screen, cursor home
        "\x1b]0;title\x07Bob",  # set the window title (OSC)
        "\x9b31mBob",  # a C1 CSI
        "Bob\u202etxt.exe",  # a bidi override
        "Bob\r\nEve",
    ],
)
def test_no_control_characters_reach_the_terminal(hostile: str) -> None:
    cleaned = printable(hostile)
    assert all(char == " " or char.isprintable() for char in cleaned)
    assert not {"\x1b", "\x9b", "\u202e"} & set(cleaned)
    game = snapshot(p1_name=hostile, players=_players_named(hostile))
    text = render_text(
        TableView(game="main", join_url=URL, snapshot=game, live=True, link=LinkState.CONNECTED)
    )
    assert not any(char in text for char in "\x1b\x9b\x07\r\u202e")


def _players_named(name: str) -> list[dict[str, object]]:
    return [
        {"id": 1, "name": name, "client_id": "alice", "connected": True, "score": 12},
        {"id": 2, "name": "Bob", "client_id": "bob", "connected": False, "score": 9},
    ]
