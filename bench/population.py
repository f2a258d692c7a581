"""Clients of one target laid out over worker processes, and one storm measured on them.

Worker 0 is the driver: the two players (and, for the subscription benchmark, the
publisher and its sink) alone in a process, so their latency is not queued behind
hundreds of spectators. Spectators go to up to four more workers (64 or more each), idle
clients to workers of their own.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from bench.clients import Endpoint, Identity
from bench.fleet import Fleet
from bench.procstat import Usage, Window
from bench.stats import percentile
from bench.worker import ClientSpec, Role, WorkerSpec

__all__ = ["STALL_SECONDS", "Layout", "connect", "measure_storm", "split"]

STALL_SECONDS = 1.0
"""A command whose state reached its sender, or every client, only after this long."""
MAX_WORKERS = 4


def split(
    items: list[Identity], per_worker: int, max_workers: int = MAX_WORKERS
) -> list[list[Identity]]:
    """``items`` in up to ``max_workers`` chunks of at least ``per_worker`` (if there are)."""
    if not items:
        return []
    workers = max(1, min(max_workers, math.ceil(len(items) / per_worker)))
    size = math.ceil(len(items) / workers)
    return [items[i : i + size] for i in range(0, len(items), size)]


@dataclass
class Layout:
    """Builds the WorkerSpecs; remembers which workers hold what."""

    endpoint: Endpoint
    spectator_qos: int = 0

    def __post_init__(self) -> None:
        self.specs: list[WorkerSpec] = []
        self.tracking: list[int] = []
        self.groups: dict[str, list[int]] = {}

    def add(
        self,
        group: str,
        clients: list[tuple[Identity, Role]],
        *,
        endpoint: Endpoint | None = None,
        tracks: bool = False,
        sink_topics: tuple[str, ...] = (),
    ) -> int:
        index = len(self.specs)
        self.specs.append(
            WorkerSpec(
                name=f"{group}-{index}",
                endpoint=endpoint or self.endpoint,
                clients=tuple(ClientSpec(identity, role) for identity, role in clients),
                spectator_qos=self.spectator_qos,
                sink_topics=sink_topics,
            )
        )
        if tracks:
            self.tracking.append(index)
        self.groups.setdefault(group, []).append(index)
        return index

    def add_players(
        self, players: list[Identity], extra: list[tuple[Identity, Role]] | None = None
    ) -> int:
        clients: list[tuple[Identity, Role]] = [(p, "player") for p in players]
        return self.add("driver", clients + (extra or []), tracks=bool(players))

    def add_spectators(self, spectators: list[Identity], endpoint: Endpoint | None = None) -> None:
        for chunk in split(spectators, 64):
            self.add(
                "spectators", [(s, "spectator") for s in chunk], endpoint=endpoint, tracks=True
            )

    def add_idle(self, group: str, idle: list[Identity], endpoint: Endpoint | None = None) -> None:
        for chunk in split(idle, 250):
            self.add(group, [(s, "idle") for s in chunk], endpoint=endpoint)


def connect(fleet: Fleet[Any], indices: list[int], timeout: float = 180.0) -> dict[str, Any]:
    """Connect the clients of these workers at once; the rate over all of them."""
    if not indices:
        return {"connected": 0, "failed": 0, "errors": [], "seconds": 0.0, "rate": 0.0}
    answers = fleet.ask_all("connect", timeout, indices)
    connected = sum(a["connected"] for a in answers)
    seconds = max(a["t1"] for a in answers) - min(a["t0"] for a in answers)
    return {
        "connected": connected,
        "failed": sum(a["failed"] for a in answers),
        "errors": [e for a in answers for e in a["errors"]][:5],
        "seconds": seconds,
        "rate": connected / seconds if seconds > 0 else math.nan,
    }


def measure_storm(
    fleet: Fleet[WorkerSpec],
    layout: Layout,
    *,
    server_pids: list[int],
    base_version: int,
    tracked: int,
    max_commands: int,
    max_seconds: float,
    interval: float = 0.0,
    drain_seconds: float = 30.0,
) -> tuple[dict[str, Any], int]:
    """One storm (or paced run) from ``base_version``; returns its figures and the version
    it ended at. The CPU window runs until every tracked client has the last version."""
    fleet.ask_all("track", 10, layout.tracking, base=base_version)
    driver = layout.groups["driver"][0]
    with Window(server_pids, fleet.pids) as window:
        storm = fleet.ask(
            driver,
            "storm",
            max_seconds + 30,
            max_commands=max_commands,
            max_seconds=max_seconds,
            interval=interval,
        )
        end = int(storm["end_version"])
        waited = fleet.ask_all(
            "wait", drain_seconds + 10, layout.tracking, version=end, within=drain_seconds
        )
    fanout = fleet.ask_all("collect", 30, layout.tracking)
    return storm_figures(storm, fanout, waited, window.result(), tracked), end


def storm_figures(
    storm: dict[str, Any],
    fanout: list[dict[str, Any]],
    waited: list[dict[str, Any]],
    usage: Usage,
    tracked: int,
) -> dict[str, Any]:
    sent: dict[int, float] = storm["sent"]
    latency: dict[int, float] = storm["latency"]
    count: dict[int, int] = {}
    tmax: dict[int, float] = {}
    for part in fanout:
        for v, c in part["count"].items():
            count[v] = count.get(v, 0) + c
        for v, t in part["tmax"].items():
            tmax[v] = max(tmax.get(v, t), t)
    completion = [tmax[v] - t for v, t in sent.items() if count.get(v, 0) >= tracked]
    incomplete = sum(1 for v in sent if count.get(v, 0) < tracked)
    done = sorted(latency)
    commands = len(done)
    if done:
        first = min(sent.values())
        last = max(sent[v] + latency[v] for v in done)
        rate = commands / (last - first) if last > first else math.nan
    else:
        rate = math.nan
    lat_ms = [latency[v] * 1000 for v in done]
    fan_ms = [c * 1000 for c in completion]
    stalls = sum(1 for v in sent if latency.get(v, math.inf) > STALL_SECONDS) + sum(
        1 for c in completion if c > STALL_SECONDS
    )
    per_cmd = usage.server_cpu / commands if commands else math.nan
    return {
        "commands": commands,
        "sent": len(sent),
        "rejected": sum(storm["rejects"].values()),
        "rejects": storm["rejects"],
        "cmd_per_s": rate,
        "sender_p50_ms": percentile(lat_ms, 50),
        "sender_p99_ms": percentile(lat_ms, 99),
        "fanout_p50_ms": percentile(fan_ms, 50),
        "fanout_p99_ms": percentile(fan_ms, 99),
        "fanout_max_ms": max(fan_ms, default=math.nan),
        "incomplete": incomplete,
        "behind_at_end": sum(w["behind"] for w in waited),
        "gaps": sum(p["gaps"] for p in fanout),
        "stalls": stalls,
        "late_ticks": storm["late_ticks"],
        "server_cpu_ms_per_cmd": per_cmd * 1000,
        "server_cpu_us_per_delivery": per_cmd / tracked * 1e6 if commands else math.nan,
        "server_cores": usage.server_cpu / usage.wall if usage.wall else math.nan,
        "server_peak_rss_mb": usage.peak_rss / 2**20,
        "generator_cores": usage.generator_cpu / usage.wall if usage.wall else math.nan,
        "busiest_worker_pct": 100 * usage.busiest_generator / usage.wall
        if usage.wall
        else math.nan,
        "others_cores": usage.others_cpu / usage.wall if usage.wall else math.nan,
        "window_s": usage.wall,
        "tracked": tracked,
    }
