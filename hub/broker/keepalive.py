"""Deadlines for silent connections: the CONNECT timeout, then the client's keep-alive.

amqtt 0.12.1 never enforces keep-alive (Yakifo/amqtt#308): its reader times out after the
keep-alive and then does nothing (``BrokerProtocolHandler.handle_read_timeout`` is a no-op),
so a client that lost power stays "connected" forever and its will is never published.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

__all__ = ["KEEP_ALIVE_GRACE", "LivenessTimer"]

KEEP_ALIVE_GRACE = 1.5
"""A client is dropped after this many keep-alive periods without a packet [MQTT-3.1.2-24]."""


def _never() -> float:
    return 0.0


def _ignore(_reason: str) -> None:
    pass


class LivenessTimer:
    """Calls ``expire(reason)`` once when the connection has been silent for too long.

    Until ``keep_alive()`` is called (the CONNECT was read) the deadline is ``connect_timeout``
    after the connection opened; then it is 1.5 x keep-alive after the last complete packet
    (``last_activity``, in ``loop.time()`` seconds). A keep-alive of 0 disables it.
    One timer per connection, re-armed only when it fires: packets cost nothing.
    """

    __slots__ = (
        "_connect_timeout",
        "_expire",
        "_handle",
        "_keep_alive",
        "_last_activity",
        "_loop",
        "_period",
    )

    def __init__(
        self,
        *,
        connect_timeout: float,
        last_activity: Callable[[], float],
        expire: Callable[[str], None],
    ) -> None:
        self._loop = asyncio.get_running_loop()
        self._last_activity = last_activity
        self._expire = expire
        self._connect_timeout = connect_timeout
        self._period = 0.0
        self._keep_alive = 0
        self._handle: asyncio.TimerHandle | None = self._loop.call_later(
            connect_timeout, self._connect_expired
        )

    def keep_alive(self, seconds: int) -> None:
        """The CONNECT arrived: from now on enforce its keep-alive instead."""
        self.cancel()
        if seconds > 0:
            self._keep_alive = seconds
            self._period = KEEP_ALIVE_GRACE * seconds
            self._arm()

    def cancel(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def release(self) -> None:
        """Cancel for good and drop the callbacks (they usually reference the timer's owner:
        no reference cycle left behind)."""
        self.cancel()
        self._last_activity = _never
        self._expire = _ignore

    def _arm(self) -> None:
        self._handle = self._loop.call_at(self._last_activity() + self._period, self._check)

    def _connect_expired(self) -> None:
        self._handle = None
        self._expire(f"no CONNECT within {self._connect_timeout:g} s")

    def _check(self) -> None:
        silent = self._loop.time() - self._last_activity()
        if silent < self._period:
            self._arm()  # a packet arrived since the timer was set
            return
        self._handle = None
        self._expire(f"silent for {silent:.1f} s with keep-alive {self._keep_alive} s")
