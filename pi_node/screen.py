"""Where the table screen goes: a full-screen rich view on a terminal, or nowhere.

``TerminalScreen("stdout")`` takes over this terminal (its alternate screen);
``TerminalScreen("/dev/tty1")`` draws on a Linux console, the Pi's HDMI output, while the
logs go to stdout (journald). ``NoScreen`` draws nothing (tests, headless runs).
"""

from __future__ import annotations

import os
import sys
from types import TracebackType
from typing import IO, Protocol, Self

from rich.console import Console
from rich.live import Live

from pi_node.render import TableView, render

__all__ = ["NoScreen", "Screen", "TerminalScreen", "configured_target", "screen_target"]


class Screen(Protocol):
    def __enter__(self) -> Self: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    def show(self, view: TableView) -> None:
        """Draw ``view`` (replacing what was shown)."""


def screen_target(setting: str, *, stdout_is_tty: bool, under_systemd: bool) -> str | None:
    """The ``screen`` setting resolved: "stdout", a device path, or None (no screen)."""
    if setting == "auto":
        return "stdout" if stdout_is_tty and not under_systemd else None
    if setting == "off":
        return None
    return setting


def configured_target(setting: str) -> str | None:
    """``screen_target`` for this process: its stdout, and whether systemd runs it."""
    return screen_target(
        setting,
        stdout_is_tty=sys.stdout.isatty(),
        under_systemd=bool(os.environ.get("NOTIFY_SOCKET") or os.environ.get("JOURNAL_STREAM")),
    )


class NoScreen:
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
        return None


class TerminalScreen:
    """A full-screen rich ``Live`` view on stdout or a terminal device."""

    def __init__(self, target: str) -> None:
        self.target = target
        self._file: IO[str] | None = None
        self._live: Live | None = None

    def __enter__(self) -> Self:
        if self.target == "stdout":
            console = Console()
        else:
            self._file = open(self.target, "w", encoding="utf-8")  # closed in __exit__
            width, height = self._device_size()
            console = Console(file=self._file, force_terminal=True, width=width, height=height)
        self._live = Live(
            console=console,
            screen=True,
            auto_refresh=False,
            redirect_stdout=False,
            redirect_stderr=False,
        )
        self._live.start()
        return self

    def _device_size(self) -> tuple[int, int]:
        assert self._file is not None
        try:
            size = os.get_terminal_size(self._file.fileno())
        except OSError:  # not a terminal (a file, a pipe): a console's usual size
            return 80, 25
        return size.columns, size.lines

    def show(self, view: TableView) -> None:
        """Draw ``view`` for the terminal's size now (it may have been resized)."""
        if self._live is None:
            return
        if self._file is not None:  # a device: ask it (stdout's size rich asks itself)
            self._live.console.size = self._device_size()
        self._live.update(render(view), refresh=True)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None
        if self._file is not None:
            self._file.close()
            self._file = None
        sys.stdout.flush()
