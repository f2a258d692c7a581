"""The workloads of issue #7, each bounded in count and time, each point repeated.

- ``storm``: 2 players + N-2 spectators, all subscribed to the state; the players
  alternate ``end_turn`` as fast as the state comes back (``bench.players``);
- ``paced``: one command every 100 ms, spectators over WebSockets through the web bridge;
- ``scale``: idle clients (WebSocket and TCP) connect, log in and subscribe to their own
  reply topic; then a 10-client storm with all of them attached;
- ``footprint``: start to ready, and idle RSS;
- ``subs``: broker CPU per publish with few or many distinct subscriptions (each phone its
  own reply topic), and per delivery;
- ``venue``: T tables side by side, each a game of its own (2 players, a display, two
  phones), played at a human pace with bursts (``bench.tables``).

Every workload records one point per repeat (``Recorder.point``); a target that fails is
recorded as a failure with its log, and the run goes on.
"""

from __future__ import annotations

import dataclasses
import math
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from bench.clients import Identity, Kind, TcpClient
from bench.errors import BenchError
from bench.fleet import Fleet
from bench.players import STORM_ROUNDS
from bench.population import STALL_SECONDS, Layout, connect, measure_storm
from bench.procstat import Window, rss_of
from bench.tables import TableSpec, VenueSpec, venue_figures, venue_main
from bench.targets import NATS_TARGETS, HubTarget, Target, TargetName, make_target
from bench.worker import Role, WorkerSpec

__all__ = ["WORKLOADS", "Plan", "Recorder"]

SUBS_TOPIC = "bench/subscale"
MiB = 2**20
Body = Callable[[], None]


@dataclass(frozen=True, slots=True)
class Plan:
    workdir: Path
    repeats: int = 3
    targets: tuple[TargetName, ...] = ("hub", "hub+mosquitto", "hub+nats", "hub+nats3", "socketio")
    tcp_client: TcpClient = "paho"
    spectator_qos: int = 0
    storm_sizes: tuple[int, ...] = (10, 100, 500)
    storm_ws_sizes: tuple[int, ...] = (500,)
    storm_seconds: float = 5.0
    storm_max_commands: int = 4000
    paced_spectators: int = 500
    paced_seconds: float = 10.0
    paced_interval: float = 0.1
    scale_ws: int = 1000
    scale_tcp: int = 1000
    scale_storm_n: int = 10
    scale_storm_seconds: float = 3.0
    subs_small: int = 10
    subs_large: int = 1000
    subs_publishes: int = 3000
    subs_fanout_sinks: int = 100
    subs_fanout_publishes: int = 300
    subs_seconds: float = 2.0
    """Publish for at least this long (psutil's CPU times tick at 10 ms)."""
    venue_sizes: tuple[int, ...] = (50, 200)
    venue_seconds: float = 20.0
    venue_drain: float = 15.0
    """After play, wait at most this long for the last replies and states."""
    hub_src: Path | None = None
    """Run ``hub`` from this source tree instead of the working tree (e.g. a snapshot)."""


@dataclass
class Recorder:
    points: list[dict[str, Any]] = field(default_factory=list)
    failures: list[dict[str, Any]] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)

    def log(self, text: str) -> None:
        print(f"[{time.monotonic() - self.started:6.1f}s] {text}", file=sys.stderr, flush=True)

    def point(self, workload: str, target: str, kind: str, n: int, figures: dict[str, Any]) -> None:
        repeat = sum(
            1
            for p in self.points
            if (p["workload"], p["target"], p["transport"], p["n"]) == (workload, target, kind, n)
        )
        self.points.append(
            {"workload": workload, "target": target, "transport": kind, "n": n, "repeat": repeat}
            | figures
        )
        shown = ", ".join(f"{k}={_short(v)}" for k, v in figures.items() if _scalar(v))
        self.log(f"{workload} {target}/{kind} n={n} #{repeat}: {shown}")

    def failure(self, workload: str, target: str, kind: str, n: int, error: str) -> None:
        self.failures.append(
            {"workload": workload, "target": target, "transport": kind, "n": n, "error": error}
        )
        self.log(f"FAILED {workload} {target}/{kind} n={n}: {error[:2000]}")


def _scalar(v: object) -> bool:
    return isinstance(v, int | float | str) and not isinstance(v, bool)


def _short(v: object) -> str:
    return f"{v:.3g}" if isinstance(v, float) else str(v)


def _guarded(rec: Recorder, key: tuple[str, str, str, int], target: Target, body: Body) -> None:
    """Start the target and run ``body``; a failure is recorded (with the servers' logs)
    instead of raised; the target is always stopped."""
    try:
        target.start()
        body()
    except (BenchError, OSError, TimeoutError) as exc:
        detail = "".join(traceback.format_exception_only(exc)).strip()
        rec.failure(*key, f"{detail}\n{target.logs()}")
    finally:
        target.stop()


def _not_nats(plan: Plan) -> tuple[TargetName, ...]:
    """The targets of the workloads other than ``storm``, which alone runs the NATS-backed
    hubs (the figures issue #13 asks for)."""
    return tuple(name for name in plan.targets if name not in NATS_TARGETS)


def _kinds(name: TargetName, tcp: bool = True) -> Kind:
    return "sio" if name == "socketio" else "tcp" if tcp else "ws"


def _session_dir(plan: Plan, *parts: object) -> Path:
    return plan.workdir / "-".join(str(p).replace("+", "_") for p in parts)


# --- turn storm ----------------------------------------------------------------------------
def storm(plan: Plan, rec: Recorder) -> None:
    series: list[tuple[int, TargetName, Kind]] = []
    for n in plan.storm_sizes:
        series += [(n, name, _kinds(name)) for name in plan.targets]
        if n in plan.storm_ws_sizes:
            series += [
                (n, name, "ws")
                for name in plan.targets
                if name != "socketio" and name not in NATS_TARGETS  # NATS: over TCP only
            ]
    for n, name, kind in series:
        _storm_series(plan, rec, Series("storm", name, kind, n, plan.storm_seconds))


def paced(plan: Plan, rec: Recorder) -> None:
    n = plan.paced_spectators + 2
    count = max(1, math.ceil(plan.paced_seconds / plan.paced_interval))
    for name in _not_nats(plan):
        kind: Kind = "sio" if name == "socketio" else "ws"
        series = Series("paced", name, kind, n, plan.paced_seconds + 1, plan.paced_interval, count)
        _storm_series(plan, rec, series)


@dataclass(frozen=True, slots=True)
class Series:
    """Repeated storms (or paced runs) on one target with one population."""

    workload: str
    name: TargetName
    kind: Kind
    n: int
    seconds: float
    interval: float = 0.0
    max_commands: int | None = None


def _storm_series(plan: Plan, rec: Recorder, series: Series) -> None:
    s = series
    workdir = _session_dir(plan, s.workload, s.name, s.kind, s.n)
    target = make_target(s.name, workdir, s.n - 2, tcp_client=plan.tcp_client, hub_src=plan.hub_src)
    rec.log(f"{s.workload} {s.name}/{s.kind} n={s.n}: starting")
    _guarded(rec, (s.workload, s.name, s.kind, s.n), target, lambda: _storms(plan, rec, s, target))


def _storms(plan: Plan, rec: Recorder, s: Series, target: Target) -> None:
    layout = Layout(target.player_endpoint(s.kind), plan.spectator_qos)
    driver = layout.add_players(target.players())
    spectators = target.phone_identities()[: s.n - 2]
    endpoints = target.spectator_endpoints(s.kind)
    for index, endpoint in enumerate(endpoints):  # evenly over the nodes of a cluster
        layout.add_spectators(spectators[index :: len(endpoints)], endpoint)
    with Fleet(layout.specs) as fleet:
        joined = connect(fleet, list(range(len(layout.specs))))
        if joined["failed"]:
            msg = f"{joined['failed']} of {s.n} clients could not connect: {joined['errors']}"
            raise BenchError(msg)
        version = int(fleet.ask(driver, "setup", 60, max_rounds=STORM_ROUNDS)["version"])
        for _ in range(plan.repeats):
            figures, version = measure_storm(
                fleet,
                layout,
                server_pids=target.pids,
                base_version=version,
                tracked=s.n,
                max_commands=s.max_commands or plan.storm_max_commands,
                max_seconds=s.seconds,
                interval=s.interval,
            )
            rec.point(s.workload, s.name, s.kind, s.n, figures)


# --- connection scale ----------------------------------------------------------------------
def scale(plan: Plan, rec: Recorder) -> None:
    idle = plan.scale_ws + plan.scale_tcp
    n = plan.scale_storm_n
    for name in _not_nats(plan):
        for repeat in range(plan.repeats):
            workdir = _session_dir(plan, "scale", name, repeat)
            target = make_target(
                name, workdir, idle + n - 2, tcp_client=plan.tcp_client, hub_src=plan.hub_src
            )
            rec.log(f"scale {name}: starting ({idle} idle clients)")
            key = ("scale", name, _scale_label(name), idle)
            _guarded(rec, key, target, partial(_scale_once, plan, rec, name, target))


def _scale_label(name: TargetName) -> str:
    return "sio" if name == "socketio" else "ws+tcp"


def _scale_once(plan: Plan, rec: Recorder, name: TargetName, target: Target) -> None:
    n = plan.scale_storm_n
    kind = _kinds(name)
    phones = target.phone_identities()
    storm_phones, idle = phones[: n - 2], phones[n - 2 :]
    layout = Layout(target.endpoint(kind), plan.spectator_qos)
    driver = layout.add_players(target.players())
    layout.add_spectators(storm_phones)
    ws_count = 0 if name == "socketio" else plan.scale_ws
    if ws_count:
        layout.add_idle("idle-ws", idle[:ws_count], target.endpoint("ws"))
    layout.add_idle("idle", idle[ws_count:])
    idle_workers = layout.groups.get("idle-ws", []) + layout.groups.get("idle", [])
    active = [i for i in range(len(layout.specs)) if i not in idle_workers]
    with Fleet(layout.specs) as fleet:
        joined = connect(fleet, active)
        if joined["failed"]:
            msg = f"storm clients could not connect: {joined['errors']}"
            raise BenchError(msg)
        version = int(fleet.ask(driver, "setup", 60, max_rounds=STORM_ROUNDS)["version"])
        time.sleep(0.5)
        before = rss_of(target.pids)
        with Window(target.pids, fleet.pids) as window:
            held = connect(fleet, idle_workers, timeout=300)
        usage = window.result()
        time.sleep(1.0)
        attached = rss_of(target.pids)
        clients = max(1, held["connected"])
        figures, version = measure_storm(
            fleet,
            layout,
            server_pids=target.pids,
            base_version=version,
            tracked=n,
            max_commands=plan.storm_max_commands,
            max_seconds=plan.scale_storm_seconds,
        )
        fleet.ask_all("close", 120, idle_workers)
        time.sleep(1.0)
        after = rss_of(target.pids)
    rec.point(
        "scale",
        name,
        _scale_label(name),
        len(idle),
        {
            "connected": held["connected"],
            "refused": held["failed"],
            "refusals": held["errors"],
            "connect_per_s": held["rate"],
            "connect_server_cpu_ms_per_client": usage.server_cpu / clients * 1000,
            "rss_before_mb": before / MiB,
            "rss_attached_mb": attached / MiB,
            "rss_after_disconnect_mb": after / MiB,
            "rss_kib_per_client": (attached - before) / clients / 1024,
            "rss_kept_kib_per_client": (after - before) / clients / 1024,
        }
        | {f"storm_{k}": v for k, v in figures.items()},
    )


# --- footprint -----------------------------------------------------------------------------
def footprint(plan: Plan, rec: Recorder) -> None:
    for name in _not_nats(plan):
        for repeat in range(plan.repeats):
            workdir = _session_dir(plan, "footprint", name, repeat)
            target = make_target(name, workdir, hub_src=plan.hub_src)
            _guarded(rec, ("footprint", name, "-", 0), target, partial(_idle, rec, target))


def _idle(rec: Recorder, target: Target) -> None:
    time.sleep(1.5)
    figures = {
        "start_to_ready_s": target.ready_seconds,
        "idle_rss_mb": rss_of(target.pids) / MiB,
        "processes": len(target.pids),
    }
    rec.point("footprint", target.name, "-", 0, figures)


# --- subscription scale --------------------------------------------------------------------
def subs(plan: Plan, rec: Recorder) -> None:
    for name in _not_nats(plan):
        if name == "socketio":
            continue  # no subscriptions in the original design
        holders = plan.subs_large - 2  # + the sink + the publisher
        target = make_target(
            name,
            _session_dir(plan, "subs", name),
            holders,
            tcp_client=plan.tcp_client,
            hub_src=plan.hub_src,
        )
        rec.log(f"subs {name}: starting")
        assert isinstance(target, HubTarget)
        key = ("subs", name, "tcp", plan.subs_large)
        _guarded(rec, key, target, partial(_subs_once, plan, rec, target))


def _subs_once(plan: Plan, rec: Recorder, target: HubTarget) -> None:
    broker = [target.servers[0].pid]  # mosquitto alone, or the hub (broker + service)
    phones = target.phone_identities()
    small = phones[: plan.subs_small - 2]
    large = phones[plan.subs_small - 2 :]
    sinks = [target.operator(f"bench-sink-{i}") for i in range(1, plan.subs_fanout_sinks + 1)]
    layout = Layout(target.endpoint("tcp"))
    driver = layout.add(
        "driver",
        [(target.operator("bench-pub"), "publisher"), (target.operator("bench-sink-0"), "sink")],
        sink_topics=(SUBS_TOPIC,),
    )
    layout.add("small", [(p, "idle") for p in small])
    # the fan-out's own publisher sits with its sinks, so each batch waits for all of them:
    # paced on one sink elsewhere, the broker outran this worker and closed its sinks as
    # slow consumers
    fan_clients: list[tuple[Identity, Role]] = [(target.operator("bench-pub-fanout"), "publisher")]
    fan_clients += [(s, "sink") for s in sinks]
    layout.add("fanout", fan_clients, sink_topics=(SUBS_TOPIC,))
    layout.add_idle("large", large)
    with Fleet(layout.specs) as fleet:
        _connect_all(fleet, [driver, *layout.groups["small"]])

        def publish(workload: str, n: int, count: int, fanout: list[int]) -> None:
            """From the driver (``fanout`` empty), or from the fan-out worker, whose
            deliveries to the driver's sink are then counted by ``_wait_sinks``."""
            publisher = fanout[0] if fanout else driver
            others = [driver] if fanout else []
            before = [fleet.ask(i, "sink_count", 10)["received"] for i in others]
            with Window(broker, fleet.pids) as window:
                done = fleet.ask(
                    publisher,
                    "publish",
                    200,
                    topic=SUBS_TOPIC,
                    count=count,
                    seconds=plan.subs_seconds,
                    batch=50,
                    within=120.0,
                )
                fanned = _wait_sinks(fleet, others, before, done["sent"])
            usage = window.result()
            sinks = done["sinks"] + len(others)
            got = done["received"] + fanned
            rec.point(
                workload,
                target.name,
                "tcp",
                n,
                {
                    "publishes": done["sent"],
                    "deliveries": got,
                    "lost": done["sent"] * sinks - got,
                    "publish_per_s": done["sent"] / (done["t1"] - done["t0"]),
                    "broker_us_per_publish": usage.server_cpu / done["sent"] * 1e6,
                    "broker_us_per_delivery": usage.server_cpu / max(1, got) * 1e6,
                    "generator_cores": usage.generator_cpu / usage.wall,
                },
            )

        for _ in range(plan.repeats):
            publish("subs", plan.subs_small, plan.subs_publishes, [])
        fan = layout.groups["fanout"]
        _connect_all(fleet, fan)
        for _ in range(plan.repeats):
            publish("subs-fanout", plan.subs_fanout_sinks + 1, plan.subs_fanout_publishes, fan)
        fleet.ask_all("close", 60, fan)
        _connect_all(fleet, layout.groups["large"])
        for _ in range(plan.repeats):
            publish("subs", plan.subs_large, plan.subs_publishes, [])


def _connect_all(fleet: Fleet[WorkerSpec], workers: list[int]) -> None:
    joined = connect(fleet, workers, timeout=300)
    if joined["failed"]:
        msg = f"{joined['failed']} clients could not connect: {joined['errors']}"
        raise BenchError(msg)


def _wait_sinks(fleet: Fleet[WorkerSpec], workers: list[int], before: list[int], sent: int) -> int:
    """Deliveries to the fan-out sinks, waiting (bounded) for the last of them."""
    if not workers:
        return 0
    deadline = time.monotonic() + 30
    while True:
        now = [int(fleet.ask(i, "sink_count", 10)["received"]) for i in workers]
        got = sum(a - b for a, b in zip(now, before, strict=True))
        want = sum(_sinks(fleet.specs[i]) for i in workers) * sent
        if got >= want or time.monotonic() > deadline:
            return got
        time.sleep(0.05)


def _sinks(spec: WorkerSpec) -> int:
    return sum(1 for client in spec.clients if client.role == "sink")


# --- venue: many tables, one game each ------------------------------------------------------
VENUE_TABLES_PER_WORKER = 25
VENUE_MAX_WORKERS = 4


def venue(plan: Plan, rec: Recorder) -> None:
    """T tables of 5 (2 players, a display, two phones), each its own game on one server.
    Hubs: even tables over MQTT/TCP, odd tables over WebSocket through the web bridge
    (``/mqtt``; on hub+mosquitto the bridge proxies each to mosquitto over TCP)."""
    for tables in plan.venue_sizes:
        for name in _not_nats(plan):
            games = tuple(f"t{i:03d}" for i in range(tables))
            label = "sio" if name == "socketio" else "tcp+ws"
            workdir = _session_dir(plan, "venue", name, tables)
            target = make_target(
                name,
                workdir,
                len(games) * 5,
                tcp_client=plan.tcp_client,
                hub_src=plan.hub_src,
                games=games,
            )
            rec.log(f"venue {name}: starting ({tables} tables)")
            key = ("venue", name, label, tables)
            _guarded(rec, key, target, partial(_venue_once, plan, rec, key, target, games))


def _venue_specs(plan: Plan, target: Target, games: tuple[str, ...]) -> list[VenueSpec]:
    phones = target.phone_identities()  # five per game, in the games' order
    sio = target.name == "socketio"
    tables: list[TableSpec] = []
    for index, game in enumerate(games):
        kind: Kind = "sio" if sio else "tcp" if index % 2 == 0 else "ws"
        five = phones[5 * index : 5 * index + 5]
        tables.append(
            TableSpec(
                game=game,
                endpoint=dataclasses.replace(target.endpoint(kind), game=game),
                players=(five[0], five[1]),
                watchers=tuple(five[2:]),
            )
        )
    workers = min(VENUE_MAX_WORKERS, max(1, math.ceil(len(tables) / VENUE_TABLES_PER_WORKER)))
    return [
        VenueSpec(f"tables-{w}", tuple(tables[w::workers]), spectator_qos=plan.spectator_qos)
        for w in range(workers)
    ]


def _venue_once(
    plan: Plan,
    rec: Recorder,
    key: tuple[str, str, str, int],
    target: Target,
    games: tuple[str, ...],
) -> None:
    specs = _venue_specs(plan, target, games)
    with Fleet(specs, venue_main) as fleet:
        joined = connect(fleet, list(range(len(specs))), timeout=300)
        if joined["failed"]:
            msg = f"{joined['failed']} clients could not connect: {joined['errors']}"
            raise BenchError(msg)
        fleet.ask_all("setup", 150, within=120.0)
        for repeat in range(plan.repeats):
            with Window(target.pids, fleet.pids) as window:
                parts = fleet.ask_all(
                    "play",
                    plan.venue_seconds + plan.venue_drain + 30,
                    seconds=plan.venue_seconds,
                    drain=plan.venue_drain,
                    seed=repeat,
                    stall=STALL_SECONDS,
                )
            rec.point(*key, venue_figures(parts, window.result(), len(games)))


WORKLOADS: dict[str, Callable[[Plan, Recorder], None]] = {
    "footprint": footprint,
    "storm": storm,
    "paced": paced,
    "scale": scale,
    "subs": subs,
    "venue": venue,
}
