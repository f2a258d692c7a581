"""Percentiles of samples, and the median and spread of repeated measurements."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence

__all__ = ["Spread", "percentile", "spread"]


def percentile(samples: Sequence[float], p: float) -> float:
    """The p-th percentile (0-100), nearest rank; NaN without samples."""
    if not samples:
        return math.nan
    ordered = sorted(samples)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


Spread = dict[str, float]
"""``{"median": m, "min": lo, "max": hi, "n": count}`` over the repeats."""


def spread(values: Sequence[float]) -> Spread:
    """Median, min and max of repeated measurements (NaNs left out)."""
    good = [v for v in values if not math.isnan(v)]
    if not good:
        return {"median": math.nan, "min": math.nan, "max": math.nan, "n": 0}
    return {
        "median": statistics.median(good),
        "min": min(good),
        "max": max(good),
        "n": len(good),
    }
