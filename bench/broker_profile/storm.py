"""Turn storm against a real ``hub serve``: server CPU per command at N subscribers.

    .venv/bin/python -m bench.broker_profile.storm --broker embedded --n 10 100 500
    .venv/bin/python -m bench.broker_profile.storm --broker mosquitto --n 500
    .venv/bin/python -m bench.broker_profile.storm --transport ws --n 500 --paced 100

Two players alternate ``end_turn`` as fast as possible, one command outstanding (the next
goes when the sender sees the new state version); N-2 spectators subscribe to the game
state (QoS ``--qos``). Every command makes the service publish the ~600-byte retained state
to all N, an event (players) and a reply (the sender). Measured over the storm window only:
server CPU (user+system of the hub, plus Mosquitto when it is the broker) per command,
commands/s, sender latency and fan-out completion percentiles.

``--profile DIR`` runs py-spy on the hub during the window (raw collapsed stacks, for
``bench.broker_profile.flame``). ``--paced MS`` sends one command every MS milliseconds.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from bench.broker_profile.mqttlite import Client, connect_tcp, connect_ws
from bench.stats import percentile
from bench.targets import free_port

REPO = Path(__file__).resolve().parents[2]
PASSWORD = "bench-password-1"  # noqa: S105 - the load generator's users, on 127.0.0.1 only
ROOT = "tablehub"
STATE = f"{ROOT}/games/main/state"
EVENTS = f"{ROOT}/games/main/events"
_USERS_CACHE = Path(tempfile.gettempdir()) / "tablehub-bench-users"


def _cmd_topic(name: str) -> str:
    return f"{ROOT}/games/main/cmd/{name}"


def _reply_topic(name: str) -> str:
    return f"{ROOT}/clients/{name}/reply"


def spectator(i: int) -> str:
    return f"s{i:04d}"


# --- the servers under test ----------------------------------------------------------------


def users_json(count: int) -> Path:
    """A users.json with players p1, p2 and spectators s0000.. sharing one password (the
    argon2 and PBKDF2 hashes are computed once; each hash carries its own salt)."""
    path = _USERS_CACHE / f"users-{count}.json"
    if path.exists():
        return path
    sys.path.insert(0, str(REPO))
    from hub.auth.passwords import hash_password, mosquitto_hash  # noqa: PLC0415

    hashed, mhash = hash_password(PASSWORD), mosquitto_hash(PASSWORD)
    names = ["p1", "p2", *(spectator(i) for i in range(count))]
    user = {
        "role": "player",
        "password_hash": hashed,
        "mosquitto_hash": mhash,
        "created_at": "2026-11-24T00:00:00+00:00",
    }
    _USERS_CACHE.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"users": dict.fromkeys(names, user)}))
    return path


@dataclass
class Server:
    """The processes under test (the hub, and Mosquitto if it is the broker)."""

    data_dir: Path
    hub: subprocess.Popen[str]
    mosquitto: subprocess.Popen[bytes] | None
    mqtt_port: int
    http_port: int

    def _processes(self) -> dict[str, psutil.Process]:
        procs = {"hub": psutil.Process(self.hub.pid)}
        if self.mosquitto is not None:
            procs["mosquitto"] = psutil.Process(self.mosquitto.pid)
        return procs

    def cpu(self) -> dict[str, float]:
        """CPU seconds (user + system) of each process."""
        return {name: sum(p.cpu_times()[:2]) for name, p in self._processes().items()}

    def rss(self) -> dict[str, int]:
        return {name: p.memory_info().rss for name, p in self._processes().items()}

    def stop(self) -> None:
        for proc in (self.hub, self.mosquitto):
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in (self.hub, self.mosquitto):
            if proc is None:
                continue
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        shutil.rmtree(self.data_dir, ignore_errors=True)


def _start_mosquitto(hub_bin: str, data_dir: Path) -> tuple[subprocess.Popen[bytes], str]:
    """Mosquitto configured by ``hub mosquitto-config`` (TCP_NODELAY on); the service URL."""
    port = free_port()
    conf = data_dir / "mosquitto"
    subprocess.run(
        [
            *(hub_bin, "mosquitto-config", "--out", str(conf), "--port", str(port)),
            *("--bind", "127.0.0.1", "--data-dir", str(data_dir)),
        ],
        check=True,
        capture_output=True,
        cwd=REPO,
    )
    extra = "user root\nmax_queued_messages 100000\nset_tcp_nodelay true\n"
    (conf / "bench.conf").write_text((conf / "mosquitto.conf").read_text() + extra)
    proc = subprocess.Popen(
        ["/usr/sbin/mosquitto", "-c", str(conf / "bench.conf")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(0.3)
    return proc, (conf / "service.url").read_text().strip()


def start_server(broker: str, users: Path, hub_src: Path = REPO) -> Server:
    """``hub serve`` from ``hub_src`` (a `git archive` snapshot for an A/B, or this tree)."""
    data_dir = Path(tempfile.mkdtemp(prefix="storm-"))
    shutil.copy(users, data_dir / "users.json")
    os.chmod(data_dir / "users.json", 0o600)
    hub_bin = str(REPO / ".venv/bin/hub")
    python = str(REPO / ".venv/bin/python")
    args = [python, "-m", "hub", "serve", "--data-dir", str(data_dir), "--bind", "127.0.0.1"]
    args += ["--mqtt-port", "0", "--http-port", "0", "--command-rate-limit", "0"]
    mosquitto = None
    if broker == "mosquitto":
        mosquitto, url = _start_mosquitto(hub_bin, data_dir)
        args += ["--broker", url]
    with (data_dir / "hub.log").open("w") as log:
        hub = subprocess.Popen(args, cwd=hub_src, stdout=subprocess.PIPE, stderr=log, text=True)
    assert hub.stdout is not None
    line = hub.stdout.readline()
    if not line.startswith("tablehub ready"):
        hub.kill()
        msg = f"hub did not start: {line!r} {(data_dir / 'hub.log').read_text()}"
        raise RuntimeError(msg)
    ready = json.loads((data_dir / "ready.json").read_text())
    return Server(data_dir, hub, mosquitto, int(ready["mqtt_port"]), int(ready["http_port"]))


# --- the clients -----------------------------------------------------------------------------


def _version(payload: bytes) -> int:
    at = payload.find(b'"version":')
    if at < 0:
        return -1
    return int(payload[at + 10 : payload.find(b",", at)])


@dataclass
class Tracker:
    """State versions as every client sees them."""

    n: int
    seen_count: dict[int, int] = field(default_factory=dict)
    completed: dict[int, float] = field(default_factory=dict)
    latest: dict[str, Any] = field(default_factory=dict)
    latest_version: int = -1
    waiters: dict[int, asyncio.Future[None]] = field(default_factory=dict)

    def on_state(self, payload: bytes, *, full: bool = False) -> None:
        version = _version(payload)
        count = self.seen_count.get(version, 0) + 1
        self.seen_count[version] = count
        if count == self.n:
            self.completed[version] = time.perf_counter()
        if full and version > self.latest_version:
            self.latest_version = version
            self.latest = json.loads(payload)
            for v in [v for v in self.waiters if v <= version]:
                waiter = self.waiters.pop(v)
                if not waiter.done():
                    waiter.set_result(None)

    async def wait_version(self, version: int, within: float = 30.0) -> None:
        if self.latest_version >= version:
            return
        waiter = self.waiters.get(version)
        if waiter is None:
            waiter = asyncio.get_running_loop().create_future()
            self.waiters[version] = waiter
        await asyncio.wait_for(asyncio.shield(waiter), within)


async def _try_connect(
    transport: str, server: Server, name: str, on_message: Any, filters: list[tuple[str, int]]
) -> Client:
    if transport == "tcp":
        client = await connect_tcp(server.mqtt_port, on_message)
    else:
        client = await connect_ws(server.http_port, on_message)
    # no keep-alive: the load generator sends no PINGREQ, and connecting 500 clients (an
    # argon2 check each) on a busy machine can take longer than 1.5 x a keep-alive
    code = await client.connect(name, name, PASSWORD, keepalive=0)
    if code != 0:
        client.close()
        msg = f"CONNACK {code} for {name}"
        raise ConnectionError(msg)
    await client.subscribe(*filters)
    return client


async def _connect(
    transport: str, server: Server, name: str, on_message: Any, filters: list[tuple[str, int]]
) -> Client:
    for _attempt in range(49):
        with contextlib.suppress(OSError, TimeoutError):
            return await _try_connect(transport, server, name, on_message, filters)
        await asyncio.sleep(0.2)
    return await _try_connect(transport, server, name, on_message, filters)


@dataclass
class Table:
    """Two players and the spectators, connected."""

    tracker: Tracker
    players: dict[str, Client]
    spectators: list[Client]
    latencies: list[float] = field(default_factory=list)
    sent_at: dict[int, float] = field(default_factory=dict)

    async def send(self, name: str, command: dict[str, Any]) -> None:
        version = self.tracker.latest_version
        self.players[name].publish(_cmd_topic(name), json.dumps(command).encode(), qos=1)
        await self.tracker.wait_version(version + 1)

    async def one_command(self) -> None:
        state = self.tracker.latest
        if state["status"] != "in_progress":
            command: dict[str, Any] = {"type": "start", "max_rounds": 99}
            name = "p1"
        else:
            command = {"type": "end_turn", "points": 1}
            name = f"p{state['current_player_id']}"
        started = time.perf_counter()
        self.sent_at[self.tracker.latest_version + 1] = started
        await self.send(name, command)
        self.latencies.append(time.perf_counter() - started)

    def close(self) -> None:
        for client in [*self.spectators, *self.players.values()]:
            client.close()


async def seat_table(server: Server, n: int, *, qos: int, transport: str) -> Table:
    tracker = Tracker(n)

    def on_spectator(topic: str, payload: bytes, _qos: int) -> None:
        tracker.on_state(payload)

    def on_player(topic: str, payload: bytes, _qos: int) -> None:
        if topic == STATE:
            tracker.on_state(payload, full=True)

    players = {}
    for name in ("p1", "p2"):
        filters = [(STATE, qos), (EVENTS, qos), (_reply_topic(name), qos)]
        players[name] = await _connect(transport, server, name, on_player, filters)
    spectators: list[Client] = []
    for start in range(0, n - 2, 50):
        spectators += await asyncio.gather(
            *(
                _connect(transport, server, spectator(i), on_spectator, [(STATE, qos)])
                for i in range(start, min(n - 2, start + 50))
            )
        )
    table = Table(tracker, players, spectators)
    await tracker.wait_version(0)
    if tracker.latest.get("status") == "not_started":
        await table.send("p1", {"type": "join", "name": "P1"})
        await table.send("p2", {"type": "join", "name": "P2"})
    return table


@contextlib.asynccontextmanager
async def py_spy(pid: int, out: Path | None) -> AsyncIterator[None]:
    """py-spy (raw collapsed stacks, 250 Hz) on ``pid`` while the block runs."""
    if out is None:
        yield
        return
    spy = await asyncio.create_subprocess_exec(
        str(REPO / ".venv/bin/py-spy"),
        *("record", "--pid", str(pid), "--rate", "250", "--format", "raw", "--nonblocking"),
        *("--output", str(out)),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    await asyncio.sleep(1.0)
    try:
        yield
    finally:
        spy.send_signal(signal.SIGINT)
        await asyncio.wait_for(spy.wait(), 30)


async def run_storm(
    server: Server,
    n: int,
    *,
    commands: int,
    warmup: int,
    qos: int,
    transport: str,
    paced_ms: float | None,
    profile: Path | None,
) -> dict[str, Any]:
    table = await seat_table(server, n, qos=qos, transport=transport)
    tracker = table.tracker
    for _ in range(warmup):
        await table.one_command()
    table.latencies.clear()
    await asyncio.sleep(0.3)

    async with py_spy(server.hub.pid, profile / f"hub-n{n}.txt" if profile else None):
        first_version = tracker.latest_version + 1
        cpu0, wall0, own0 = server.cpu(), time.perf_counter(), time.process_time()
        pace_next = time.perf_counter()
        for _ in range(commands):
            await table.one_command()
            if paced_ms is not None:
                pace_next += paced_ms / 1000
                await asyncio.sleep(max(0.0, pace_next - time.perf_counter()))
        last_version = tracker.latest_version
        deadline = time.perf_counter() + 10  # the last fan-out, everywhere
        while last_version not in tracker.completed and time.perf_counter() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.01)
        wall = time.perf_counter() - wall0
        cpu1, own = server.cpu(), time.process_time() - own0
        rss = server.rss()

    versions = range(first_version, last_version + 1)
    fanout = [
        tracker.completed[v] - table.sent_at[v]
        for v in versions
        if v in tracker.completed and v in table.sent_at
    ]
    incomplete = sum(1 for v in versions if v not in tracker.completed)
    table.close()
    await asyncio.sleep(0.2)
    server_cpu = {k: cpu1[k] - cpu0[k] for k in cpu1}
    return {
        "n": n,
        "transport": transport,
        "qos": qos,
        "commands": commands,
        "paced_ms": paced_ms,
        "wall_s": wall,
        "commands_per_s": commands / wall,
        "cpu_ms_per_command": 1000 * sum(server_cpu.values()) / commands,
        "cpu_ms_per_command_by_process": {k: 1000 * v / commands for k, v in server_cpu.items()},
        "loadgen_cpu_ms_per_command": 1000 * own / commands,
        "sender_p50_ms": 1000 * percentile(table.latencies, 50),
        "sender_p99_ms": 1000 * percentile(table.latencies, 99),
        "fanout_p50_ms": 1000 * percentile(fanout, 50),
        "fanout_p99_ms": 1000 * percentile(fanout, 99),
        "fanout_max_ms": 1000 * max(fanout, default=float("nan")),
        "fanout_incomplete": incomplete,
        "stalls_over_1s": sum(1 for f in fanout if f > 1.0) + incomplete,
        "rss_bytes": rss,
    }


def _line(broker: str, result: dict[str, Any]) -> str:
    by_process = {k: round(v, 2) for k, v in result["cpu_ms_per_command_by_process"].items()}
    return (
        f"{broker:9} {result['transport']} n={result['n']:4} qos={result['qos']} "
        f"cpu/cmd={result['cpu_ms_per_command']:.2f} ms {json.dumps(by_process)} "
        f"cmd/s={result['commands_per_s']:.0f} "
        f"sender p50/p99={result['sender_p50_ms']:.1f}/{result['sender_p99_ms']:.1f} ms "
        f"fanout p50/p99/max={result['fanout_p50_ms']:.1f}/{result['fanout_p99_ms']:.1f}/"
        f"{result['fanout_max_ms']:.1f} ms stalls={result['stalls_over_1s']} "
        f"loadgen/cmd={result['loadgen_cpu_ms_per_command']:.1f} ms"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--broker", choices=["embedded", "mosquitto"], default="embedded")
    parser.add_argument("--transport", choices=["tcp", "ws"], default="tcp")
    parser.add_argument("--n", type=int, nargs="+", default=[10, 100, 500])
    parser.add_argument("--commands", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument("--qos", type=int, default=1, choices=[0, 1])
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--paced", type=float, help="one command every PACED ms")
    parser.add_argument("--profile", type=Path, help="py-spy the hub into this directory")
    parser.add_argument("--json", type=Path, help="append results (JSON lines) here")
    parser.add_argument(
        "--hub-src",
        type=Path,
        default=REPO,
        help="run hub from this source tree (e.g. a `git archive` snapshot), not the checkout",
    )
    args = parser.parse_args()
    if args.profile is not None:
        args.profile.mkdir(parents=True, exist_ok=True)

    users = users_json(max(args.n))
    by_n: dict[int, list[float]] = {}
    for n in args.n:
        for _ in range(args.repeat):
            server = start_server(args.broker, users, args.hub_src.resolve())
            try:
                result = asyncio.run(
                    run_storm(
                        server,
                        n,
                        commands=args.commands,
                        warmup=args.warmup,
                        qos=args.qos,
                        transport=args.transport,
                        paced_ms=args.paced,
                        profile=args.profile,
                    )
                )
            finally:
                server.stop()
            result["broker"] = args.broker
            by_n.setdefault(n, []).append(result["cpu_ms_per_command"])
            print(_line(args.broker, result), flush=True)
            if args.json is not None:
                with args.json.open("a") as out:
                    out.write(json.dumps(result) + "\n")
    for n, values in by_n.items():
        if len(values) > 1:
            print(
                f"n={n}: median {statistics.median(values):.2f} ms/command "
                f"(min {min(values):.2f}, max {max(values):.2f}, runs {len(values)})"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
