"""The table screen, as a pure function: a ``TableView`` in, a rich renderable out.

``render(view)`` is what the Pi shows full-screen on its console/HDMI; ``render_text(view)``
is the same screen as plain text (what the tests read). No clock, no I/O: everything shown
is in the view.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

import qrcode
from qrcode.constants import ERROR_CORRECT_L
from rich import box
from rich.console import Console, ConsoleOptions, Group, RenderableType, RenderResult
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from hub.protocol import Event, GameStatus, PlayerView, Snapshot

__all__ = ["LinkState", "TableView", "qr_lines", "render", "render_text"]


class LinkState(StrEnum):
    CONNECTING = "connecting"
    """Not connected yet since the node started."""
    CONNECTED = "connected"
    DOWN = "down"
    """The broker is unreachable (or the connection dropped); reconnecting."""
    REFUSED = "refused"
    """The broker answered but refused the login."""


@dataclass(frozen=True, slots=True)
class TableView:
    """Everything the screen shows."""

    game: str
    join_url: str
    """The URL phones open to join (with the join code once it is known)."""
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

    @property
    def stale(self) -> bool:
        return self.snapshot is not None and not self.live


def _clock(moment: datetime) -> str:
    return moment.astimezone().strftime("%H:%M:%S")


def _seat_name(snapshot: Snapshot, seat: int) -> str:
    player = snapshot.players[seat - 1]
    return player.name or f"seat {seat}"


def _headline(snapshot: Snapshot | None) -> Text:
    if snapshot is None:
        return Text("No game yet: waiting for the hub", style="bold")
    status = snapshot.status
    if status is GameStatus.IN_PROGRESS:
        turn = _seat_name(snapshot, snapshot.current_player_id)
        return Text.assemble(
            (f"Round {snapshot.current_round} of {snapshot.max_rounds}", "bold"),
            "  ·  ",
            (f"{turn}'s turn", "bold green"),
        )
    if status is GameStatus.PAUSED:
        return Text.assemble(
            ("PAUSED", "bold yellow"),
            f"  ·  round {snapshot.current_round} of {snapshot.max_rounds}",
            "  ·  press START to resume",
        )
    if status is GameStatus.FINISHED:
        one, two = (player.score for player in snapshot.players)
        if snapshot.winner_id is None:
            return Text(f"FINISHED  ·  a draw, {one} to {two}", style="bold magenta")
        winner = _seat_name(snapshot, snapshot.winner_id)
        return Text(f"FINISHED  ·  {winner} wins, {one} to {two}", style="bold magenta")
    if all(player.client_id is not None for player in snapshot.players):
        return Text(f"Ready  ·  {snapshot.max_rounds} rounds  ·  press START", style="bold")
    return Text("Waiting for players  ·  scan the code to join", style="bold")


def _phone(player: PlayerView) -> Text:
    if player.client_id is None:
        return Text("")
    if player.connected:
        return Text("● connected", style="green")
    return Text("○ away", style="red")


def _players(snapshot: Snapshot | None) -> Table:
    table = Table(box=box.SIMPLE_HEAD, expand=True, pad_edge=False)
    table.add_column("", width=2)
    table.add_column("seat", justify="right", width=4)
    table.add_column("player", ratio=3)
    table.add_column("score", justify="right", width=6)
    table.add_column("phone", no_wrap=True, min_width=11)
    if snapshot is None:
        for seat in (1, 2):
            table.add_row("", str(seat), Text("?", style="dim"), "", "")
        return table
    playing = snapshot.status in (GameStatus.IN_PROGRESS, GameStatus.PAUSED)
    for player in snapshot.players:
        to_move = playing and player.id == snapshot.current_player_id
        name = (
            Text(player.name, style="bold" if to_move else "")
            if player.name is not None
            else Text("(empty seat)", style="dim")
        )
        if snapshot.status is GameStatus.FINISHED and snapshot.winner_id == player.id:
            name.append("  winner", style="magenta")
        table.add_row(
            Text("▶", style="bold green") if to_move else "",
            str(player.id),
            name,
            Text(str(player.score), style="bold") if player.client_id is not None else "",
            _phone(player),
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
    elif view.link is LinkState.REFUSED:
        hub = Text("hub refused the login", style="bold red")
    elif view.link is LinkState.DOWN:
        hub = Text("hub UNREACHABLE, reconnecting", style="bold red")
    else:
        hub = Text("connecting to the hub", style="yellow")
    if view.link_detail and view.link is not LinkState.CONNECTED:
        hub.append(f": {view.link_detail}", style="dim")
    return hub


def _footer(view: TableView) -> Group:
    lines: list[RenderableType] = [_connection(view)]
    snapshot = view.snapshot
    if snapshot is not None:
        lines.append(
            Text(
                f"game {snapshot.game} · version {snapshot.version} · "
                f"updated {_clock(snapshot.updated_at)}",
                style="dim",
            )
        )
    if view.last_event is not None:
        event = view.last_event
        points = f" +{event.points}" if event.points else ""
        lines.append(Text(f"last: {event.by} {event.type}{points}", style="dim"))
    if view.notice:
        lines.append(Text(view.notice, style="bold yellow"))
    return Group(*lines)


def _stale_banner(view: TableView) -> Text | None:
    if not view.stale or view.snapshot is None:
        return None
    return Text(
        f"STALE: last known state from {_clock(view.snapshot.updated_at)},"
        " the hub is not confirming it",
        style="bold white on red",
    )


def qr_lines(data: str) -> list[str]:
    """``data`` as a QR code in half-block characters: two modules per character cell,
    dark modules drawn in the foreground (show it black on white)."""
    code = qrcode.QRCode(border=1, error_correction=ERROR_CORRECT_L)
    code.add_data(data)
    code.make(fit=True)
    matrix: list[list[bool]] = code.get_matrix()
    if len(matrix) % 2:
        matrix = [*matrix, [False] * len(matrix[0])]
    glyphs = {(True, True): "█", (True, False): "▀", (False, True): "▄", (False, False): " "}
    return [
        "".join(glyphs[top, bottom] for top, bottom in zip(upper, lower, strict=True))
        for upper, lower in zip(matrix[0::2], matrix[1::2], strict=True)
    ]


def _join(view: TableView) -> tuple[Group, tuple[int, int]]:
    """The join panel, and its narrowest and widest widths (the QR code's, the URL's)."""
    lines = qr_lines(view.join_url)
    width = max(len(lines[0]), 16)
    qr = Text("\n".join(lines), style="black on white", no_wrap=True)
    code = (
        Text(f"code {view.join_code}", style="bold")
        if view.join_code is not None
        else Text("no join code yet", style="dim")
    )
    url = Text(view.join_url, style="cyan", overflow="fold")
    panel = Group(Text("Scan to join", style="bold"), qr, url, code)
    return panel, (width, max(width, len(view.join_url)))


class _Columns:
    """The game on the left, the join panel on the right (as wide as the URL when there is
    room, else as the QR code, the URL folded); stacked on a narrow console."""

    MIN_LEFT = 40

    def __init__(self, left: Group, right: Group, right_widths: tuple[int, int]) -> None:
        self.left = left
        self.right = right
        self.right_widths = right_widths

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        narrow, wide = self.right_widths
        room = options.max_width - 2 - self.MIN_LEFT  # 2: the gap between the columns
        if room < narrow:
            yield self.left
            yield Text("")
            yield self.right
            return
        grid = Table.grid(expand=True, padding=(0, 0, 0, 2))
        grid.add_column(ratio=1)
        grid.add_column(width=(wide if room >= wide else narrow) + 2)  # + the padding
        grid.add_row(self.left, self.right)
        yield grid


def render(view: TableView) -> RenderableType:
    """The whole table screen."""
    left: list[RenderableType] = []
    banner = _stale_banner(view)
    if banner is not None:
        left.append(banner)
    left += [_headline(view.snapshot), _players(view.snapshot), _footer(view)]
    join, join_widths = _join(view)
    title = f"tablehub · game {view.game}" + ("  ·  STALE" if view.stale else "")
    return Panel(
        _Columns(Group(*left), join, join_widths),
        title=title,
        border_style="red" if view.stale or view.link is not LinkState.CONNECTED else "blue",
        box=box.ROUNDED,
    )


def render_text(view: TableView, width: int = 110) -> str:
    """The screen as plain text (no colours, no control codes)."""
    out = io.StringIO()
    console = Console(
        file=out,
        width=width,
        color_system=None,
        force_terminal=False,
        no_color=True,
        highlight=False,
        emoji=False,
        legacy_windows=False,
    )
    console.print(render(view))
    return out.getvalue()
