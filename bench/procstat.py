"""CPU and memory of process groups over a measurement window (psutil, i.e. /proc).

``with Window(server_pids, generator_pids) as w:`` samples the servers' RSS every 50 ms
(peak and last) and, at both ends, the CPU time (user + system) of each group and of the
whole machine; afterwards ``w.result()`` says how many cores each used, and how much of the
machine went to neither (other people's processes on a shared box).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from types import TracebackType
from typing import Self

import psutil

__all__ = ["Usage", "Window", "rss_of"]


def _cpu_each(procs: list[psutil.Process]) -> list[float]:
    found: list[float] = []
    for proc in procs:
        try:
            times = proc.cpu_times()
        except psutil.Error:
            found.append(0.0)
            continue
        found.append(times.user + times.system)
    return found


def rss_of(pids: list[int]) -> int:
    """Resident set size of the processes together, bytes."""
    total = 0
    for pid in pids:
        try:
            total += psutil.Process(pid).memory_info().rss
        except psutil.Error:
            continue
    return total


def _machine_busy() -> float:
    t = psutil.cpu_times()  # on Linux guest time is part of user time already
    return float(t.user + t.nice + t.system + t.irq + t.softirq + t.steal)


@dataclass(frozen=True, slots=True)
class Usage:
    wall: float
    """seconds"""
    server_cpu: float
    """CPU seconds of all server processes together"""
    generator_cpu: float
    machine_cpu: float
    """CPU seconds of the whole machine (all cores)"""
    peak_rss: int
    end_rss: int
    busiest_generator: float
    """CPU seconds of the busiest generator process: near ``wall``, that process was
    saturated and the receive times of its clients include queueing in the generator"""

    @property
    def others_cpu(self) -> float:
        return max(0.0, self.machine_cpu - self.server_cpu - self.generator_cpu)


class Window:
    def __init__(self, server_pids: list[int], generator_pids: list[int] | None = None) -> None:
        self._server_pids = server_pids
        self._servers = [psutil.Process(pid) for pid in server_pids]
        self._generators = [psutil.Process(pid) for pid in generator_pids or []]
        self._stop = threading.Event()
        self._peak = 0
        self._last = 0
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._t0 = self._t1 = 0.0
        self._cpu0: tuple[float, list[float], float] = (0.0, [], 0.0)
        self._cpu1 = self._cpu0

    def _sample(self) -> None:
        while not self._stop.wait(0.05):
            self._last = rss_of(self._server_pids)
            self._peak = max(self._peak, self._last)

    def _cpus(self) -> tuple[float, list[float], float]:
        return (sum(_cpu_each(self._servers)), _cpu_each(self._generators), _machine_busy())

    def __enter__(self) -> Self:
        self._peak = self._last = rss_of(self._server_pids)
        self._cpu0 = self._cpus()
        self._t0 = time.monotonic()
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._t1 = time.monotonic()
        self._cpu1 = self._cpus()
        self._stop.set()
        self._thread.join()
        self._last = rss_of(self._server_pids)
        self._peak = max(self._peak, self._last)

    def result(self) -> Usage:
        (server0, gens0, machine0), (server1, gens1, machine1) = self._cpu0, self._cpu1
        generators = [b - a for a, b in zip(gens0, gens1, strict=True)]
        return Usage(
            wall=self._t1 - self._t0,
            server_cpu=server1 - server0,
            generator_cpu=sum(generators),
            machine_cpu=machine1 - machine0,
            peak_rss=self._peak,
            end_rss=self._last,
            busiest_generator=max(generators, default=0.0),
        )
