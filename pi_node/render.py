"""The table screen, as a pure function: a ``TableView`` in, a rich renderable out.

``render(view)`` is what the Pi shows full-screen on its console/HDMI; ``render_text(view)``
is the same screen as plain text (what the tests read). No clock, no I/O: everything shown,
the time for the turn clock's countdown included, is in the view.

The screen is drawn for the Linux console (``TERM=linux`` on ``/dev/tty1``), whose fonts
(Debian's console-setup Lat15-*, Uni2-*, Uni3-*) have only some of Unicode: every
character drawn here is in ``CONSOLE_GLYPHS`` or Latin-1 (names are reduced to that), and
nothing from the wire reaches the terminal unfiltered (``printable``).
"""

from __future__ import annotations

import io
import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

import qrcode
from qrcode.constants import ERROR_CORRECT_L
from rich import box
from rich.console import Console, ConsoleOptions, Group, RenderableType, RenderResult
from rich.padding import Padding
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from hub.protocol import Event, GameStatus, PlayerView, Snapshot

__all__ = [
    "CONSOLE_GLYPHS",
    "QR_QUIET_ZONE",
    "LinkState",
    "TableView",
    "printable",
    "qr_lines",
    "render",
    "render_text",
]

CONSOLE_GLYPHS = "█●▶·─│╭╮╰╯"
"""The characters beyond ASCII and Latin-1 the screen draws (the box and table lines
included); each is in every Lat15, Uni2 and Uni3 console font (tests/pi_node checks)."""
QR_QUIET_ZONE = 4
"""Light modules around the QR code, as the QR specification asks."""
MIN_LEFT = 40
"""The game's column is at least this wide beside the QR code."""
TURN_MARK, CONNECTED_MARK, DOT = "▶", "●", "·"
_ESCAPES = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?")
"""Whole CSI and OSC sequences (their printable tails are dropped with the ESC)."""


class LinkState(StrEnum):
    CONNECTING = "connecting"
    """Not connected yet since the node started."""
    CONNECTED = "connected"
    DOWN = "down"
    """The broker is unreachable (or the connection dropped); reconnecting."""
    REFUSED = "refused"
    """The broker answered but refused the login."""
    TAKEN_OVER = "taken_over"
    """The broker keeps closing the connection: another node logs in as the same user."""


@dataclass(frozen=True, slots=True)
class TableView:
    """Everything the screen shows."""

    game: str
    join_url: str | None
    """The URL phones open to join (with the join code once it is known); None: not known."""
    snapshot: Snapshot | None = None
    live: bool = False
    """The snapshot came from the hub on the current connection (else: cached, stale)."""
    link: LinkState = LinkState.CONNECTING
    link_detail: str | None = None
    hub_online: bool | None = None
    """The state service's retained status: True, False, or None (not seen yet)."""
    epoch: int | None = None
    join_code: str | None = None
    last_event: Event | None = None
    notice: str | None = None
    """One line for the people at the table (a refused button press, say)."""
    now: datetime | None = None
    """The wall-clock time the turn clock's countdown is drawn for."""
    identity: str = "pi"
    """The display user this node logs in as (named when another node takes it over)."""

    @property
    def stale(self) -> bool:
        return self.snapshot is not None and not self.live

    @property
    def trusted(self) -> bool:
        """The hub confirms what is shown: connected, its state service up, state live."""
        return self.link is LinkState.CONNECTED and self.live and self.hub_online is not False


def printable(text: str, *, limit: int = 200) -> str:
    """``text`` safe to draw on a terminal: no control or format characters (escape
    sequences, bidi overrides), characters a console font lacks as ``?``, at most ``limit``."""
    out = []
    for char in _ESCAPES.sub("", text[:limit]):
        category = unicodedata.category(char)
        if category[0] in "CZ" and char != " ":
            out.append(" " if category[0] == "Z" else "")
        elif ord(char) < 0x100 or char in CONSOLE_GLYPHS:
            out.append(char)
        else:
            out.append("?")
    return "".join(out)


def _clock(moment: datetime) -> str:
    return moment.astimezone().strftime("%H:%M:%S")


def _seat_name(snapshot: Snapshot, seat: int) -> str:
    player = snapshot.players[seat - 1]
    return printable(player.name) if player.name else f"seat {seat}"


def _countdown(snapshot: Snapshot, now: datetime | None) -> tuple[str, bool] | None:
    """The turn clock as ``m:ss`` and whether it is nearly out; None without a clock."""
    if snapshot.turn_deadline is not None and now is not None:
        left = max(timedelta(0), snapshot.turn_deadline - now)
        seconds = int(left.total_seconds() + 0.999)  # 0:01 until it is really out
    elif snapshot.turn_remaining_ms is not None:
        seconds = (snapshot.turn_remaining_ms + 999) // 1000
    else:
        return None
    return f"{seconds // 60}:{seconds % 60:02d}", seconds <= 10


def _turn_banner(snapshot: Snapshot, now: datetime | None) -> RenderableType:
    """Whose turn it is, big enough to read from across the table."""
    turn = _seat_name(snapshot, snapshot.current_player_id)
    paused = snapshot.status is GameStatus.PAUSED
    style = "bold black on yellow" if paused else "bold black on green"
    words = f"{TURN_MARK} {turn.upper()}'S TURN" + ("  (PAUSED)" if paused else "")
    line = Text(words, style=style)
    clock = _countdown(snapshot, now)
    if clock is not None:
        left, hurry = clock
        line.append("   ")
        line.append(f" {left} left ", style="bold white on red" if hurry else "bold black on white")
    rounds = f"round {snapshot.current_round} of {snapshot.max_rounds}"
    if paused:
        rounds += f" {DOT} press START to resume"
    return Group(
        Padding(line, (1, 1), style=style, expand=True),
        Text(rounds, style="bold"),
    )


def _headline(view: TableView) -> RenderableType:
    snapshot = view.snapshot
    if snapshot is None:
        return Text("No game yet: waiting for the hub", style="bold")
    status = snapshot.status
    if status in (GameStatus.IN_PROGRESS, GameStatus.PAUSED):
        return _turn_banner(snapshot, view.now)
    if status is GameStatus.FINISHED:
        one, two = (player.score for player in snapshot.players)
        if snapshot.winner_id is None:
            return Text(f"FINISHED {DOT} a draw, {one} to {two}", style="bold magenta")
        winner = _seat_name(snapshot, snapshot.winner_id)
        return Text(f"FINISHED {DOT} {winner} wins, {one} to {two}", style="bold magenta")
    if all(player.client_id is not None for player in snapshot.players):
        return Text(f"Ready {DOT} {snapshot.max_rounds} rounds {DOT} press START", style="bold")
    if view.trusted:
        return Text(f"Waiting for players {DOT} scan the code to join", style="bold")
    return Text("Waiting for players", style="bold")


def _phone(player: PlayerView, *, trusted: bool) -> Text:
    if player.client_id is None:
        return Text("")
    if not trusted:
        return Text("unknown", style="dim")
    if player.connected:
        return Text(f"{CONNECTED_MARK} connected", style="green")
    return Text("x away", style="bold red")


def _players(view: TableView) -> Table:
    table = Table(box=box.SIMPLE_HEAD, expand=True, pad_edge=False)
    table.add_column("", width=1, no_wrap=True)
    table.add_column("player", ratio=1, min_width=8, overflow="fold")
    table.add_column("score", justify="right", width=5, overflow="fold")
    table.add_column("phone", no_wrap=True, overflow="crop", width=11)
    snapshot = view.snapshot
    if snapshot is None:
        for seat in (1, 2):
            table.add_row("", Text(f"seat {seat}: ?", style="dim"), "", "")
        return table
    playing = snapshot.status in (GameStatus.IN_PROGRESS, GameStatus.PAUSED)
    for player in snapshot.players:
        to_move = playing and player.id == snapshot.current_player_id
        name = (
            Text(printable(player.name), style="bold green" if to_move else "bold")
            if player.name is not None
            else Text("(empty seat)", style="dim")
        )
        if snapshot.status is GameStatus.FINISHED and snapshot.winner_id == player.id:
            name.append("  winner", style="magenta")
        table.add_row(
            Text(TURN_MARK, style="bold green") if to_move else "",
            name,
            Text(str(player.score), style="bold") if player.client_id is not None else "",
            _phone(player, trusted=view.trusted),
        )
    return table


def _connection(view: TableView) -> Text:
    if view.link is LinkState.CONNECTED:
        if view.hub_online is None:
            hub = Text("hub: waiting for its status", style="yellow")
        elif view.hub_online:
            epoch = f" (epoch {view.epoch})" if view.epoch is not None else ""
            hub = Text(f"hub online{epoch}", style="green")
        else:
            hub = Text("hub OFFLINE (state service stopped)", style="bold red")
    elif view.link is LinkState.TAKEN_OVER:
        hub = Text(
            f"another pi-node is logged in as {printable(view.identity)}: the hub lets only one"
            " in at a time (stop the other one, or give this one its own display user)",
            style="bold red",
        )
    elif view.link is LinkState.REFUSED:
        hub = Text("hub refused the login", style="bold red")
    elif view.link is LinkState.DOWN:
        hub = Text("hub UNREACHABLE, reconnecting", style="bold red")
    else:
        hub = Text("connecting to the hub", style="yellow")
    if view.link_detail and view.link in (LinkState.DOWN, LinkState.REFUSED):
        hub.append(f": {printable(view.link_detail)}", style="dim")
    return hub


def _footer(view: TableView) -> Group:
    lines: list[RenderableType] = [_connection(view)]
    snapshot = view.snapshot
    if snapshot is not None:
        lines.append(
            Text(
                f"version {snapshot.version} {DOT} updated {_clock(snapshot.updated_at)}",
                style="dim",
            )
        )
    if view.last_event is not None:
        event = view.last_event
        points = f" +{event.points}" if event.points else ""
        what = f"last: {printable(event.by)} {printable(event.type)}{points}"
        lines.append(Text(what, style="dim"))
    if view.notice:
        lines.append(Text(printable(view.notice), style="bold yellow"))
    return Group(*lines)


def _stale_banner(view: TableView) -> Text | None:
    if view.snapshot is None or view.trusted:
        return None
    return Text(
        f"NOT LIVE: the hub is not confirming this game; last known state from"
        f" {_clock(view.snapshot.updated_at)} (phones and turn may have changed)",
        style="bold white on red",
    )


def qr_lines(data: str) -> list[str]:
    """``data`` as a QR code with a quiet zone of 4 modules, each module two full blocks
    wide and one line high (square on a console's 1:2 character cell); dark modules are
    blocks, light ones spaces: show it black on white."""
    code = qrcode.QRCode(border=QR_QUIET_ZONE, error_correction=ERROR_CORRECT_L)
    code.add_data(data)
    code.make(fit=True)
    matrix: list[list[bool]] = code.get_matrix()
    return ["".join("██" if dark else "  " for dark in row) for row in matrix]


def _join_text(view: TableView, *, big: bool) -> Group:
    """The join code and URL as text (beside the QR code, or instead of it)."""
    if not view.trusted:
        return Group(
            Text("Joining is paused", style="bold yellow"),
            Text("until the hub is back", style="yellow"),
        )
    lines: list[RenderableType] = [Text("Join on your phone:", style="bold")]
    if view.join_url is not None:
        lines.append(Text(printable(view.join_url), style="bold cyan", overflow="fold"))
    if view.join_code is not None:
        digits = " ".join(printable(view.join_code)) if big else printable(view.join_code)
        lines.append(Text.assemble("code ", (f" {digits} ", "bold black on white")))
    else:
        lines.append(Text("no join code yet", style="dim"))
    return Group(*lines)


class _Screen:
    """The whole screen, laid out for the console's width and height: the QR code (on the
    right) only where it fits whole, with its quiet zone; else the join URL and code as
    text. Never a cut-off QR code."""

    def __init__(self, view: TableView) -> None:
        self.view = view

    def _game(self, join_beneath: Group | None) -> Group:
        view = self.view
        parts: list[RenderableType] = []
        banner = _stale_banner(view)
        if banner is not None:
            parts.append(banner)
        parts += [_headline(view), _players(view)]
        if join_beneath is not None:
            parts.append(join_beneath)
        parts.append(_footer(view))
        return Group(*parts)

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        view = self.view
        width = options.max_width  # inside the panel's border and padding
        height = options.height if options.height is not None else console.height - 2
        qr = qr_lines(view.join_url) if view.join_url and view.trusted else None
        fits = qr is not None and len(qr) <= height and len(qr[0]) + 2 + MIN_LEFT <= width
        if qr is None or not fits:
            yield self._game(_join_text(view, big=True))
            return
        grid = Table.grid(expand=True, padding=(0, 0, 0, 2))
        grid.add_column(ratio=1)
        grid.add_column(width=len(qr[0]) + 2)
        left = self._game(_join_text(view, big=False))
        grid.add_row(left, Text("\n".join(qr), style="black on white", no_wrap=True))
        yield grid


def render(view: TableView) -> RenderableType:
    """The whole table screen."""
    title = f"tablehub {DOT} game {printable(view.game)}"
    if not view.trusted and view.snapshot is not None:
        title += f" {DOT} NOT LIVE"
    return Panel(
        _Screen(view),
        title=title,
        border_style="blue" if view.trusted else "red",
        box=box.ROUNDED,
    )


def render_text(view: TableView, width: int = 110, height: int = 40) -> str:
    """The screen as plain text (no colours, no control codes)."""
    out = io.StringIO()
    console = Console(
        file=out,
        width=width,
        height=height,
        color_system=None,
        force_terminal=False,
        no_color=True,
        highlight=False,
        emoji=False,
        legacy_windows=False,
    )
    console.print(render(view))
    return out.getvalue()
