"""Admission of credential checks (join codes, passwords, session tokens) per address.

``async with gate.attempt(address) as attempt:`` waits its turn, then the caller checks the
credentials and calls ``await attempt.refuse()`` on a failure, which locks the address
(``LoginThrottle``) and holds the refusal back as long. The rules:

* an address without recent failures runs up to ``per_address`` checks at once (more wait);
* an address with failures runs one at a time, each only once its lock has passed: the
  right credentials wait exactly as long as wrong ones, and parallel requests buy nothing;
* beyond ``per_address`` (``1`` once failing) plus a short queue, attempts are refused at
  once (``TooManyAttemptsError``) without any check.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from hub.auth.errors import AuthError
from hub.auth.throttle import LoginThrottle

__all__ = ["Attempt", "LoginGate", "TooManyAttemptsError"]

DEFAULT_PER_ADDRESS = 8
QUEUE_CLEAN = 256
"""Attempts an address without failures may have waiting behind its running ones (a
room of phones behind one router; the broker bounds unauthenticated connections anyway)."""
QUEUE_FAILING = 4
"""Attempts a failing address may have waiting behind its one running check."""


class TooManyAttemptsError(AuthError):
    """Refused without a check: the address has too many attempts running or waiting."""

    def __init__(self, address: str, retry_after: float) -> None:
        super().__init__(f"too many login attempts from {address}")
        self.retry_after = retry_after


@dataclass(slots=True)
class _Slot:
    running: int = 0
    waiting: int = 0
    changed: asyncio.Condition = field(default_factory=asyncio.Condition)


class Attempt:
    """One admitted check; ``refuse()`` after a failed one."""

    def __init__(self, throttle: LoginThrottle, address: str, clock: Callable[[], float]) -> None:
        self._throttle = throttle
        self._address = address
        self._clock = clock

    async def refuse(self) -> float:
        """Record the failure and wait out the lock it earns; returns the delay."""
        delay = self._throttle.failed(self._address, self._clock())
        await asyncio.sleep(delay)
        return delay


class LoginGate:
    """Checks of credentials, admitted per address (see the module docstring)."""

    def __init__(
        self,
        throttle: LoginThrottle,
        *,
        per_address: int = DEFAULT_PER_ADDRESS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.throttle = throttle
        self._per_address = per_address
        self._clock = clock
        self._slots: dict[str, _Slot] = {}

    def _running_limit(self, address: str) -> int:
        return 1 if self.throttle.failures(address, self._clock()) else self._per_address

    def _queue_limit(self, address: str) -> int:
        failing = self.throttle.failures(address, self._clock())
        return 1 + QUEUE_FAILING if failing else self._per_address + QUEUE_CLEAN

    @asynccontextmanager
    async def attempt(self, address: str) -> AsyncIterator[Attempt]:
        """Wait for the address's turn and its lock; raises ``TooManyAttemptsError``."""
        slot = self._slots.setdefault(address, _Slot())
        if slot.running + slot.waiting >= self._queue_limit(address):
            retry_after = max(1.0, self.throttle.locked_for(address, self._clock()))
            self._forget_idle(address, slot)
            raise TooManyAttemptsError(address, retry_after)
        slot.waiting += 1
        try:
            async with slot.changed:
                await slot.changed.wait_for(lambda: slot.running < self._running_limit(address))
                slot.running += 1
        finally:
            slot.waiting -= 1
        try:
            # the lock can grow while we sleep (a check that ran before the first failure)
            while (locked := self.throttle.locked_for(address, self._clock())) > 0:  # noqa: ASYNC110
                await asyncio.sleep(locked)
            yield Attempt(self.throttle, address, self._clock)
        finally:
            slot.running -= 1
            async with slot.changed:
                slot.changed.notify_all()
            self._forget_idle(address, slot)

    def _forget_idle(self, address: str, slot: _Slot) -> None:
        if slot.running == 0 and slot.waiting == 0 and self._slots.get(address) is slot:
            del self._slots[address]
