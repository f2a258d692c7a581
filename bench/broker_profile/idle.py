"""RSS per idle connected client, and whether it comes back after they disconnect.

    .venv/bin/python -m bench.broker_profile.idle --kinds hub stock mosquitto --clients 2000

C clients connect (keep-alive 60 s), each subscribes to the game state and its own reply
topic, and stay idle; the broker's RSS is read before, while connected, and after they all
disconnected, for ``--cycles`` rounds (a leak shows as RSS growing round after round).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path
from typing import Any

import psutil

from bench.broker_profile.broker_server import start
from bench.broker_profile.mqttlite import Client, connect_tcp


async def _phone(port: int, name: str) -> Client:
    client = await connect_tcp(port)
    assert await client.connect(name) == 0
    await client.subscribe(("tablehub/games/main/state", 1), (f"tablehub/clients/{name}/reply", 1))
    return client


async def cycle(port: int, proc: psutil.Process, clients: int) -> dict[str, Any]:
    before = proc.memory_info().rss
    cpu0 = proc.cpu_times()
    t0 = time.perf_counter()
    phones: list[Client] = []
    for start_at in range(0, clients, 100):
        phones += await asyncio.gather(
            *(_phone(port, f"phone{i}") for i in range(start_at, min(clients, start_at + 100)))
        )
    connect_s = time.perf_counter() - t0
    cpu1 = proc.cpu_times()
    await asyncio.sleep(2.0)
    held = proc.memory_info().rss
    for phone in phones:
        phone.close()
    await asyncio.gather(*(phone.closed for phone in phones))
    await asyncio.sleep(3.0)
    after = proc.memory_info().rss
    return {
        "clients": clients,
        "rss_before": before,
        "rss_held": held,
        "rss_after": after,
        "kib_per_client": (held - before) / 1024 / clients,
        "kib_left_per_client": (after - before) / 1024 / clients,
        "connects_per_s": clients / connect_s,
        "cpu_us_per_connect": 1e6
        * ((cpu1.user + cpu1.system) - (cpu0.user + cpu0.system))
        / clients,
    }


async def run(kind: str, clients: int, cycles: int) -> list[dict[str, Any]]:
    broker = start(kind)
    try:
        proc = psutil.Process(broker.proc.pid)
        await asyncio.sleep(0.5)
        return [await cycle(broker.port, proc, clients) for _ in range(cycles)]
    finally:
        broker.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--kinds", nargs="+", default=["hub", "stock", "mosquitto"])
    parser.add_argument("--clients", type=int, default=2000)
    parser.add_argument("--cycles", type=int, default=3)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    for kind in args.kinds:
        results = asyncio.run(run(kind, args.clients, args.cycles))
        for n, r in enumerate(results, 1):
            print(
                f"{kind:9} cycle {n}: {r['kib_per_client']:6.1f} KiB/idle client held, "
                f"{r['kib_left_per_client']:6.1f} KiB/client left after disconnect "
                f"(RSS {r['rss_before'] / 2**20:.1f} -> {r['rss_held'] / 2**20:.1f} -> "
                f"{r['rss_after'] / 2**20:.1f} MiB), {r['connects_per_s']:.0f} connects/s, "
                f"{r['cpu_us_per_connect']:.0f} us CPU/connect",
                flush=True,
            )
            if args.json is not None:
                with args.json.open("a") as out:
                    out.write(json.dumps({"kind": kind, "cycle": n, **r}) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
