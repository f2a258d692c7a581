"""The benchmark's one error: a server, a worker or a workload could not do its part.

BenchError
"""

from __future__ import annotations

__all__ = ["BenchError"]


class BenchError(Exception):
    """Something the benchmark needs failed; the message says what and where."""
