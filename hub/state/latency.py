"""How long commands take inside the hub: a fixed-bucket histogram (pure, no clock)."""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass

__all__ = ["LATENCY_BUCKETS", "LatencyHistogram", "LatencySummary"]

LATENCY_BUCKETS: tuple[float, ...] = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
)  # fmt: skip
"""Upper bounds in seconds; a command at 1 ms on loopback lands in the second bucket."""


@dataclass(frozen=True, slots=True)
class LatencySummary:
    """Cumulative counts per upper bound (Prometheus ``le``), plus sum and count."""

    buckets: tuple[tuple[float, int], ...]
    sum: float
    count: int


class LatencyHistogram:
    def __init__(self, bounds: tuple[float, ...] = LATENCY_BUCKETS) -> None:
        self._bounds = bounds
        self._counts = [0] * (len(bounds) + 1)  # the last one is +Inf
        self._sum = 0.0

    def observe(self, seconds: float) -> None:
        self._counts[bisect_left(self._bounds, seconds)] += 1
        self._sum += seconds

    def summary(self) -> LatencySummary:
        running, buckets = 0, []
        for bound, count in zip((*self._bounds, float("inf")), self._counts, strict=True):
            running += count
            buckets.append((bound, running))
        return LatencySummary(tuple(buckets), self._sum, running)
