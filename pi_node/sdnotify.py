"""systemd's notify protocol (``Type=notify``): READY, STATUS, WATCHDOG, STOPPING.

One datagram per message to the unix socket named by ``NOTIFY_SOCKET`` (``@name`` is an
abstract socket). Without ``NOTIFY_SOCKET`` (not under systemd) every call is a no-op. A
failed send is logged once and never stops the node.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Mapping
from types import TracebackType
from typing import Self

__all__ = ["Notifier"]

_LOGGER = logging.getLogger(__name__)


class Notifier:
    """``with Notifier.from_env() as notify: notify.ready()``."""

    def __init__(self, address: str | None, watchdog_usec: int | None = None) -> None:
        self.address = address
        self.watchdog_interval = watchdog_usec / 2_000_000 if watchdog_usec else None
        """Seconds between WATCHDOG=1 pings (half of WatchdogSec), or None: not asked for."""
        self._sock: socket.socket | None = None
        self._warned = False

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> Notifier:
        address = environ.get("NOTIFY_SOCKET") or None
        watchdog = environ.get("WATCHDOG_USEC", "")
        watchdog_pid = environ.get("WATCHDOG_PID", "")
        for_us = not watchdog_pid or watchdog_pid == str(os.getpid())
        usec = int(watchdog) if watchdog.isdigit() and for_us else None
        return cls(address, usec)

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def __enter__(self) -> Self:
        if self.address is not None:
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def send(self, **fields: str) -> None:
        """``send(READY="1", STATUS="...")`` -> ``READY=1\\nSTATUS=...``."""
        if self._sock is None or self.address is None:
            return
        text = "\n".join(f"{key}={value.replace(chr(10), ' ')}" for key, value in fields.items())
        target = "\0" + self.address[1:] if self.address.startswith("@") else self.address
        try:
            self._sock.sendto(text.encode(), target)
        except OSError as exc:
            if not self._warned:
                _LOGGER.warning("cannot notify systemd at %s: %s", self.address, exc)
                self._warned = True

    def ready(self, status: str) -> None:
        self.send(READY="1", STATUS=status)

    def status(self, status: str) -> None:
        self.send(STATUS=status)

    def watchdog(self) -> None:
        self.send(WATCHDOG="1")

    def stopping(self) -> None:
        self.send(STOPPING="1", STATUS="stopping")
