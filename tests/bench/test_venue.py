"""The venue workload's pieces on real servers: the Socket.IO baseline's rooms, and one
tiny venue (2 tables, 2 s) on the hub and on the baseline.

Correctness only (every table plays, nothing lost or refused); the figures themselves are
printed by ``python -m bench``, never asserted.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import socketio  # type: ignore[import-untyped]

from bench.clients import Endpoint
from bench.targets import SocketIOTarget
from bench.workloads import Plan, Recorder, venue


async def _until(check: Any, what: str, within: float = 20.0) -> None:
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            msg = f"no {what} in {within} s"
            raise TimeoutError(msg)
        await asyncio.sleep(0.01)


async def _rooms(endpoint: Endpoint) -> dict[str, list[dict[str, Any]]]:
    seen: dict[str, list[dict[str, Any]]] = {}
    clients: dict[str, Any] = {}
    base = f"http://{endpoint.host}:{endpoint.port}"
    urls = {"a1": "?game=a", "a2": "?game=a", "b1": "?game=b", "m": ""}
    try:
        for name, query in urls.items():
            client = socketio.AsyncClient(reconnection=False)
            seen[name] = []
            client.on("game_state", lambda state, n=name: seen[n].append(state))
            await client.connect(base + query, transports=["websocket"], wait_timeout=20)
            clients[name] = client
        await _until(lambda: all(seen[n] for n in urls), "first states")
        await clients["a1"].emit("client_message", {"type": "join", "name": "Ann"})
        await _until(lambda: all(len(seen[n]) == 2 for n in ("a1", "a2")), "game a's state")
        await clients["b1"].emit("client_message", {"type": "join", "name": "Bob"})
        await _until(lambda: len(seen["b1"]) == 2, "game b's state")
        await clients["m"].emit("client_message", {"type": "join", "name": "Max"})
        await _until(lambda: len(seen["m"]) == 2, "main's state")
        # main's broadcasts go to everyone connected, as in the original design
        await _until(lambda: all(len(seen[n]) == 3 for n in ("a1", "a2", "b1")), "main's")
        # what came before anyone left (a player's leaving is broadcast too)
        return {name: list(states) for name, states in seen.items()}
    finally:
        for client in clients.values():
            await client.disconnect()


def test_the_baseline_broadcasts_a_game_to_its_room_only(tmp_path: Path) -> None:
    target = SocketIOTarget(tmp_path)
    try:
        target.start()
        seen = asyncio.run(_rooms(target.endpoint("sio")))
    finally:
        target.stop()
    names = {n: [s["p1_name"] for s in states] for n, states in seen.items()}
    assert names["a1"] == names["a2"] == [None, "Ann", "Max"]
    assert names["b1"] == [None, "Bob", "Max"]
    assert names["m"] == [None, "Max"]


def test_a_small_venue_plays_every_table_without_losses(tmp_path: Path) -> None:
    plan = Plan(
        workdir=tmp_path,
        repeats=1,
        targets=("hub", "socketio"),
        venue_sizes=(2,),
        venue_seconds=4.0,
        venue_drain=10.0,
    )
    rec = Recorder()
    venue(plan, rec)
    assert rec.failures == []
    points = {p["target"]: p for p in rec.points}
    assert set(points) == {"hub", "socketio"}
    for point in points.values():
        assert point["tables"] == 2
        assert point["clients"] == 10
        assert point["commands"] >= 2  # both tables moved (each starts within its first 2 s)
        assert (point["lost"], point["incomplete"], point["rejected"]) == (0, 0, 0)
