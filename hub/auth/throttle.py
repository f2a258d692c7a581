"""Slow down repeated failed logins from one address (pure: the caller passes the time)."""

from __future__ import annotations

__all__ = ["LoginThrottle"]


class LoginThrottle:
    """The n-th failure within ``window`` seconds costs ``base * 2**(n-1)`` s, up to ``cap``."""

    def __init__(self, *, base: float = 0.25, cap: float = 5.0, window: float = 60.0) -> None:
        self.base, self.cap, self.window = base, cap, window
        self._failures: dict[str, tuple[int, float]] = {}

    def failed(self, address: str, now: float) -> float:
        """Record a failure; return how long to hold the refusal back."""
        count, last = self._failures.get(address, (0, now))
        count = 1 if now - last > self.window else count + 1
        self._failures[address] = (count, now)
        if len(self._failures) > 10_000:
            self._failures = {a: v for a, v in self._failures.items() if now - v[1] <= self.window}
        return float(min(self.cap, self.base * 2.0 ** (count - 1)))
