"""``pi-node`` (also ``python -m pi_node``): the daemon on the Raspberry Pi at the table.

Exit codes: 0 after SIGTERM/SIGINT, 2 for bad settings (a message, no traceback), 1 when
the screen or the GPIO asked for cannot be opened.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.metadata
import logging
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from pi_node.app import run
from pi_node.screen import configured_target
from pi_node.settings import PiNodeSettings, SettingsError, load_settings

__all__ = ["JournalFormatter", "main"]

_LOGGER = logging.getLogger("pi_node")
_PRIORITY = {logging.DEBUG: 7, logging.INFO: 6, logging.WARNING: 4, logging.ERROR: 3}


class JournalFormatter(logging.Formatter):
    """``<6>pi_node.node: message``: journald reads the priority from the ``<N>`` prefix
    and adds the time itself."""

    def __init__(self) -> None:
        super().__init__("%(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        priority = _PRIORITY.get(record.levelno, 2 if record.levelno > logging.ERROR else 6)
        text = super().format(record).replace("\n", "\n ")
        return f"<{priority}>{text}"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pi-node", description="tablehub's Pi node: the table screen, buttons and LEDs"
    )
    parser.add_argument(
        "--version", action="version", version=f"tablehub {importlib.metadata.version('tablehub')}"
    )
    parser.add_argument(
        "--config", type=Path, help="TOML config file (default config/pi_node.toml)"
    )
    parser.add_argument("--broker", help="mqtt://USER:PASS@HOST:PORT of the hub's broker")
    parser.add_argument("--game", help="the game to show (default main)")
    parser.add_argument("--join-url", help="the phones' join page (default: the hub's link)")
    parser.add_argument("--cache", type=Path, help="cache file of the last known game")
    parser.add_argument("--gpio", choices=["auto", "mock", "none"], help="buttons and LEDs")
    parser.add_argument("--screen", help="auto, off, stdout or a tty device (/dev/tty1)")
    parser.add_argument("--log-level", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    return parser


def _setup_logging(level: str, stream: TextIO) -> None:
    handler = logging.StreamHandler(stream)
    if os.environ.get("JOURNAL_STREAM"):
        handler.setFormatter(JournalFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(level)


async def _main(settings: PiNodeSettings) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await run(settings, stop)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = load_settings(
            args.config,
            broker=args.broker,
            game=args.game,
            join_url=args.join_url,
            cache_path=args.cache,
            gpio=args.gpio,
            screen=args.screen,
            log_level=args.log_level,
        )
    except SettingsError as exc:
        print(f"pi-node: {exc}", file=sys.stderr)
        return 2
    target = configured_target(settings.screen)
    # the screen owns stdout when it is drawn there: the logs go to stderr then
    _setup_logging(settings.log_level, sys.stderr if target == "stdout" else sys.stdout)
    try:
        asyncio.run(_main(settings))
    except OSError as exc:  # the screen device, or GPIO explicitly asked for
        _LOGGER.error("cannot start: %s", exc)  # noqa: TRY400 - a message, not a traceback
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
