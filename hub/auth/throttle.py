"""Slow down repeated failed logins from one address (pure: the caller passes the time).

The n-th failure within ``window`` seconds of the previous one locks the address for
``base * 2**(n-1)`` seconds, at most ``cap``: the exponent stops growing once the cap is
reached, so no count overflows. ``LoginGate`` (``hub.auth.gate``) makes every check from a
locked address wait for the lock first, whatever the answer would be.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["LoginThrottle"]

_MAX_EXPONENT = 64
"""2**64 times any sensible base is far beyond any cap: the delay is the cap from there."""
_FORGET_ABOVE = 10_000
"""Addresses remembered before the ones whose window has passed are forgotten."""


@dataclass(slots=True)
class _Record:
    failures: int
    last: float
    locked_until: float


class LoginThrottle:
    """The n-th failure within ``window`` seconds locks the address for
    ``base * 2**(n-1)`` s, up to ``cap``."""

    def __init__(self, *, base: float = 0.25, cap: float = 5.0, window: float = 60.0) -> None:
        if base < 0 or cap < base or window <= 0:
            msg = "the login throttle needs 0 <= base <= cap and window > 0"
            raise ValueError(msg)
        self.base, self.cap, self.window = base, cap, window
        self._records: dict[str, _Record] = {}

    def delay(self, failures: int) -> float:
        """The lock after the ``failures``-th failure in a row (any count, no overflow)."""
        exponent = min(max(failures - 1, 0), _MAX_EXPONENT)
        return float(min(self.cap, self.base * 2.0**exponent))

    def failed(self, address: str, now: float) -> float:
        """Record a failure; return how long the address is locked (hold the refusal back
        as long)."""
        record = self._records.get(address)
        failures = 1 if record is None or now - record.last > self.window else record.failures + 1
        delay = self.delay(failures)
        self._records[address] = _Record(failures, now, now + delay)
        if len(self._records) > _FORGET_ABOVE:
            self._records = {a: r for a, r in self._records.items() if now - r.last <= self.window}
        return delay

    def failures(self, address: str, now: float) -> int:
        """Failures of the address in a row (0 once the window has passed)."""
        record = self._records.get(address)
        return 0 if record is None or now - record.last > self.window else record.failures

    def locked_for(self, address: str, now: float) -> float:
        """Seconds until the address may be checked again (0: now)."""
        record = self._records.get(address)
        return 0.0 if record is None else max(0.0, record.locked_until - now)
