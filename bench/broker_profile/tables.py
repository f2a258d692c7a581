"""Many tables on one hub at a human pace: the state service's CPU per command as tables
are added (issue #17).

    .venv/bin/python -m bench.broker_profile.tables --tables 50 200 --repeat 3

T games (``HUB_GAMES``), two players each over TCP (QoS 1, ``mqttlite``); the player whose
turn it is answers after a random 0.2-2 s (seeded per table), one command outstanding per
table. Measured over ``--window`` seconds after a warm-up: the hub's CPU (user+system) per
command replied in the window, commands/s, and command -> reply p50/p99/max. Printed, not
asserted. ``--profile DIR`` runs py-spy on the hub during the window.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import shutil
import sqlite3
import statistics
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil

from bench.broker_profile.mqttlite import Client, connect_tcp
from bench.broker_profile.storm import PASSWORD, REPO, ROOT, Server, py_spy, users_json
from bench.stats import percentile


def _game(i: int) -> str:
    return f"t{i:03d}"


def _player(table: int, seat: int) -> str:
    return f"s{2 * table + seat:04d}"  # users_json names them s0000..


def start_hub(tables: int, users: Path) -> Server:
    """``hub serve`` running ``tables`` games (HUB_GAMES), ephemeral ports."""
    data_dir = Path(tempfile.mkdtemp(prefix="tables-"))
    shutil.copy(users, data_dir / "users.json")
    os.chmod(data_dir / "users.json", 0o600)
    args = [str(REPO / ".venv/bin/hub"), "serve", "--data-dir", str(data_dir)]
    args += ["--bind", "127.0.0.1", "--mqtt-port", "0", "--http-port", "0"]
    env = {**os.environ, "HUB_GAMES": json.dumps([_game(i) for i in range(tables)])}
    with (data_dir / "hub.log").open("w") as log:
        hub = subprocess.Popen(
            args, cwd=REPO, stdout=subprocess.PIPE, stderr=log, text=True, env=env
        )
    assert hub.stdout is not None
    line = hub.stdout.readline()
    if not line.startswith("tablehub ready"):
        hub.kill()
        msg = f"hub did not start: {line!r} {(data_dir / 'hub.log').read_text()}"
        raise RuntimeError(msg)
    ready = json.loads((data_dir / "ready.json").read_text())
    return Server(data_dir, hub, None, int(ready["mqtt_port"]), int(ready["http_port"]))


@dataclass
class Table:
    game: str
    rng: random.Random
    players: list[Client] = field(default_factory=list)
    state: dict[str, Any] = field(default_factory=dict)
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    sent: dict[str, float] = field(default_factory=dict)
    waiting: dict[str, asyncio.Future[bool]] = field(default_factory=dict)
    replies: list[tuple[float, float]] = field(default_factory=list)
    """(reply time, command -> reply seconds)"""
    refused: int = 0
    seq: int = 0

    def on_message(self, topic: str, payload: bytes, _qos: int) -> None:
        now = time.perf_counter()
        if topic.endswith("/state"):
            state = json.loads(payload)
            if state.get("version", -1) > self.state.get("version", -1):
                self.state = state
                self.changed.set()
            return
        reply = json.loads(payload)
        sent = self.sent.pop(reply.get("request_id") or "", None)
        if sent is not None:
            self.replies.append((now, now - sent))
        if not reply.get("ok"):
            self.refused += 1
            print(f"{self.game}: refused: {reply}", flush=True)
        waiter = self.waiting.pop(reply.get("request_id") or "", None)
        if waiter is not None and not waiter.done():
            waiter.set_result(bool(reply.get("ok")))

    async def wait(self, version: int) -> None:
        while self.state.get("version", -1) < version:
            self.changed.clear()
            await asyncio.wait_for(self.changed.wait(), 30)

    async def send(self, seat: int, command: dict[str, Any]) -> None:
        self.seq += 1
        rid = f"{self.game}-{self.seq}"
        command = {**command, "request_id": rid}
        version = self.state.get("version", -1)
        waiter = asyncio.get_running_loop().create_future()
        self.waiting[rid] = waiter
        self.sent[rid] = time.perf_counter()
        topic = f"{ROOT}/games/{self.game}/cmd/{_player(int(self.game[1:]), seat)}"
        self.players[seat].publish(topic, json.dumps(command).encode(), qos=1)
        try:
            if await asyncio.wait_for(waiter, 30):
                await self.wait(version + 1)  # the state goes out before the reply
        except TimeoutError:
            print(f"{self.game}: no reply to {rid} within 30 s", flush=True)
            self.waiting.pop(rid, None)

    async def play(self, stop: float) -> None:
        while time.perf_counter() < stop:
            await asyncio.sleep(self.rng.uniform(0.2, 2.0))
            if self.state["status"] != "in_progress":
                await self.send(0, {"type": "start", "max_rounds": 99})
            else:
                seat = int(self.state["current_player_id"]) - 1
                await self.send(seat, {"type": "end_turn", "points": 1})


async def _connect(server: Server, name: str, table: Table) -> Client:
    for _attempt in range(50):
        with contextlib.suppress(OSError, TimeoutError):
            client = await connect_tcp(server.mqtt_port, table.on_message)
            if await client.connect(name, name, PASSWORD, keepalive=0) == 0:
                state = f"{ROOT}/games/{table.game}/state"
                await client.subscribe((state, 1), (f"{ROOT}/clients/{name}/reply", 1))
                return client
            client.close()
        await asyncio.sleep(0.2)
    msg = f"could not connect {name}"
    raise ConnectionError(msg)


async def seat(server: Server, index: int, seed: int) -> Table:
    table = Table(_game(index), random.Random(seed * 100_003 + index))  # noqa: S311 - a load pattern
    for s in range(2):
        table.players.append(await _connect(server, _player(index, s), table))
    await table.wait(0)
    for s in range(2):
        await table.send(s, {"type": "join", "name": f"P{s + 1}"})
    await table.send(0, {"type": "start", "max_rounds": 99})
    return table


def _commits(server: Server, at0: str, at1: str) -> tuple[int, int]:
    """Journal entries stored in the window, and the commits that stored them: the service
    stamps every entry of one batch (one commit) with the same time (to the millisecond,
    so two batches in one millisecond count as one: an upper bound of entries/commit)."""
    uri = f"{(server.data_dir / 'journal.sqlite3').as_uri()}?mode=ro"
    with contextlib.closing(sqlite3.connect(uri, uri=True)) as db:
        row = db.execute(
            "SELECT count(*), count(DISTINCT at) FROM journal WHERE at >= ? AND at < ?",
            (at0, at1),
        ).fetchone()
    return int(row[0]), int(row[1])


async def run(
    server: Server,
    tables: int,
    *,
    warmup: float,
    window: float,
    idle: float,
    seed: int,
    profile: Path | None,
    mark: Path | None = None,
) -> dict[str, Any]:
    seated: list[Table] = []
    for start in range(0, tables, 50):
        seated += await asyncio.gather(
            *(seat(server, i, seed) for i in range(start, min(tables, start + 50)))
        )
    idle0 = server.cpu()["hub"]
    await asyncio.sleep(idle)  # seated, nobody playing: the hub's own background cost
    idle_cpu = (server.cpu()["hub"] - idle0) / idle if idle else float("nan")
    t0 = time.perf_counter()
    stop = t0 + warmup + window + 0.5
    players = [asyncio.create_task(t.play(stop)) for t in seated]
    await asyncio.sleep(warmup)
    if mark is not None:  # for an outside profiler (perf, strace): the window starts now
        mark.write_text(f"{server.hub.pid}\n")  # noqa: ASYNC240 - a few bytes, once
    out = profile / f"hub-t{tables}.txt" if profile else None
    async with py_spy(server.hub.pid, out):
        hub = psutil.Process(server.hub.pid)
        at0 = datetime.now(UTC).isoformat()
        w0, cpu0, own0 = time.perf_counter(), hub.cpu_times(), time.process_time()
        await asyncio.sleep(window)
        w1, cpu1, own1 = time.perf_counter(), hub.cpu_times(), time.process_time()
        at1 = datetime.now(UTC).isoformat()
    await asyncio.gather(*players)
    latencies = [lat for t in seated for at, lat in t.replies if w0 <= at < w1]
    refused = sum(t.refused for t in seated)
    lost = sum(len(t.sent) for t in seated)
    for t in seated:
        for client in t.players:
            client.close()
    entries, commits = _commits(server, at0, at1)
    count = max(1, len(latencies))
    return {
        "tables": tables,
        "window_s": w1 - w0,
        "commands": len(latencies),
        "commands_per_s": len(latencies) / (w1 - w0),
        "cpu_ms_per_command": 1000 * (sum(cpu1[:2]) - sum(cpu0[:2])) / count,
        "user_ms_per_command": 1000 * (cpu1.user - cpu0.user) / count,
        "idle_cpu_ms_per_s": 1000 * idle_cpu,
        "loadgen_cpu_share": (own1 - own0) / (w1 - w0),
        "reply_p50_ms": 1000 * percentile(latencies, 50),
        "reply_p99_ms": 1000 * percentile(latencies, 99),
        "reply_max_ms": 1000 * max(latencies, default=float("nan")),
        "entries_per_commit": entries / max(1, commits),
        "refused": refused,
        "unanswered": lost,
    }


def _line(label: str, r: dict[str, Any]) -> str:
    return (
        f"{label} T={r['tables']:3} cmds={r['commands']:5} cmd/s={r['commands_per_s']:6.1f} "
        f"cpu/cmd={r['cpu_ms_per_command']:.3f} ms (user {r['user_ms_per_command']:.3f}) "
        f"idle={r['idle_cpu_ms_per_s']:.1f} ms/s reply p50/p99/max="
        f"{r['reply_p50_ms']:.1f}/{r['reply_p99_ms']:.1f}/{r['reply_max_ms']:.1f} ms "
        f"entries/commit={r['entries_per_commit']:.2f} "
        f"refused={r['refused']} unanswered={r['unanswered']} "
        f"loadgen cpu={100 * r['loadgen_cpu_share']:.0f}%"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tables", type=int, nargs="+", default=[50, 200])
    parser.add_argument("--window", type=float, default=15.0)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--idle", type=float, default=3.0, help="seconds of idle CPU measured")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--label", default="hub")
    parser.add_argument("--profile", type=Path, help="py-spy the hub into this directory")
    parser.add_argument("--json", type=Path, help="append results (JSON lines) here")
    parser.add_argument("--mark", type=Path, help="write the hub's pid here when the window starts")
    parser.add_argument("--keep-log", type=Path, help="copy the hub's log here at the end")
    args = parser.parse_args()
    if args.profile is not None:
        args.profile.mkdir(parents=True, exist_ok=True)
    users = users_json(2 * max(args.tables))
    by_t: dict[int, list[float]] = {}
    for tables in args.tables:
        for rep in range(args.repeat):
            server = start_hub(tables, users)
            try:
                result = asyncio.run(
                    run(
                        server,
                        tables,
                        warmup=args.warmup,
                        window=args.window,
                        idle=args.idle,
                        seed=args.seed + rep,
                        profile=args.profile,
                        mark=args.mark,
                    )
                )
            finally:
                if args.keep_log is not None:
                    shutil.copy(server.data_dir / "hub.log", args.keep_log)
                server.stop()
            by_t.setdefault(tables, []).append(result["cpu_ms_per_command"])
            print(_line(args.label, result), flush=True)
            if args.json is not None:
                with args.json.open("a") as out:
                    out.write(json.dumps({"label": args.label, **result}) + "\n")
    for tables, values in by_t.items():
        if len(values) > 1:
            print(
                f"T={tables}: median {statistics.median(values):.3f} ms/command "
                f"(min {min(values):.3f}, max {max(values):.3f}, runs {len(values)})"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
