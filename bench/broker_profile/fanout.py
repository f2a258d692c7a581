"""Broker CPU per delivery (QoS 0): subscription scale and fan-out, hub vs stock vs Mosquitto.

    .venv/bin/python -m bench.broker_profile.fanout --kinds hub stock mosquitto

``filters``: K idle clients each hold their own reply filter (K = 10, 1000); one subscriber
takes ``bench/t``; a publisher sends M messages there (at most ``--window`` unreceived).
The broker's CPU per publish (= per delivery) must not grow with K.
``fanout``: S subscribers on ``bench/t``; CPU per delivery = CPU / (M x S).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from pathlib import Path
from typing import Any

import psutil

from bench.broker_profile.broker_server import start
from bench.broker_profile.mqttlite import Client, connect_tcp

TOPIC = "bench/t"


async def _client(port: int, name: str, on_message: Any = None) -> Client:
    client = await connect_tcp(port, on_message)
    code = await client.connect(name)
    assert code == 0, code
    return client


async def measure(
    port: int, pid: int, *, fillers: int, subscribers: int, messages: int, window: int, qos: int
) -> dict[str, Any]:
    proc = psutil.Process(pid)
    idle: list[Client] = []
    for start_at in range(0, fillers, 100):
        batch = await asyncio.gather(
            *(_client(port, f"phone{i}") for i in range(start_at, min(fillers, start_at + 100)))
        )
        await asyncio.gather(
            *(
                c.subscribe((f"tablehub/clients/phone{start_at + j}/reply", 1))
                for j, c in enumerate(batch)
            )
        )
        idle += batch
    received = 0
    progressed = asyncio.Event()

    def on_message(_topic: str, _payload: bytes, _qos: int) -> None:
        nonlocal received
        received += 1
        progressed.set()

    subs = [await _client(port, f"sub{i}", on_message) for i in range(subscribers)]
    for sub in subs:
        await sub.subscribe((TOPIC, qos))
    publisher = await _client(port, "publisher")
    payload = b"x" * 600
    await asyncio.sleep(0.5)

    async def run(count: int) -> None:
        nonlocal received
        received = 0
        sent = 0
        target = count * subscribers
        while received < target:
            while sent < count and sent * subscribers - received < window * subscribers:
                publisher.publish(TOPIC, payload, qos=qos)
                sent += 1
            progressed.clear()
            await asyncio.wait_for(progressed.wait(), 10)

    await run(min(2000, messages))  # warm-up
    t0 = proc.cpu_times()
    wall0 = time.perf_counter()
    await run(messages)
    wall = time.perf_counter() - wall0
    t1 = proc.cpu_times()
    cpu = (t1.user + t1.system) - (t0.user + t0.system)
    for client in [*idle, *subs, publisher]:
        client.close()
    await asyncio.sleep(0.3)
    return {
        "fillers": fillers,
        "subscribers": subscribers,
        "messages": messages,
        "qos": qos,
        "deliveries_per_s": messages * subscribers / wall,
        "us_per_publish": 1e6 * cpu / messages,
        "us_per_delivery": 1e6 * cpu / (messages * subscribers),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--kinds", nargs="+", default=["hub", "stock", "mosquitto"])
    parser.add_argument("--filters", type=int, nargs="+", default=[10, 1000])
    parser.add_argument("--fanout", type=int, nargs="*", default=[100])
    parser.add_argument("--messages", type=int, default=20000)
    parser.add_argument("--window", type=int, default=50)
    parser.add_argument("--qos", type=int, default=0)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    rows = []
    plans = [("filters", k, 1) for k in args.filters] + [("fanout", 10, s) for s in args.fanout]
    for kind in args.kinds:
        for mode, fillers, subscribers in plans:
            values = []
            for _ in range(args.repeat):
                broker = start(kind)
                try:
                    messages = args.messages if mode == "filters" else args.messages // 10
                    if kind == "stock" and fillers >= 1000:
                        messages = min(messages, 3000)
                    result = asyncio.run(
                        measure(
                            broker.port,
                            broker.proc.pid,
                            fillers=fillers,
                            subscribers=subscribers,
                            messages=messages,
                            window=args.window,
                            qos=args.qos,
                        )
                    )
                finally:
                    broker.stop()
                values.append(result)
            per_delivery = [r["us_per_delivery"] for r in values]
            row = {
                "kind": kind,
                "mode": mode,
                **{k: values[0][k] for k in ("fillers", "subscribers", "qos")},
                "us_per_delivery_median": statistics.median(per_delivery),
                "us_per_delivery_runs": per_delivery,
                "deliveries_per_s_median": statistics.median(r["deliveries_per_s"] for r in values),
            }
            rows.append(row)
            print(
                f"{kind:9} {mode:7} filters={fillers:5} subscribers={subscribers:4} "
                f"qos={args.qos} {row['us_per_delivery_median']:7.2f} us/delivery "
                f"(runs {', '.join(f'{v:.2f}' for v in per_delivery)}) "
                f"{row['deliveries_per_s_median']:8.0f} deliveries/s",
                flush=True,
            )
            if args.json is not None:
                with args.json.open("a") as out:
                    out.write(json.dumps(row) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
