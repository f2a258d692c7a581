"""The worker side of the Fleet's pipe: requests in, one answer each, until ``close``.

A thread blocks on the pipe and hands each ``(op, args)`` request to the worker's event
loop; the loop runs ``handlers[op](**args)`` one request at a time and sends back
``(op, result)`` (an exception becomes ``{"error", "trace"}``, which the coordinator
reports). ``tick`` runs every second meanwhile (the clients' keep-alives).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import traceback
from collections.abc import Awaitable, Callable
from multiprocessing.connection import Connection
from typing import Any

__all__ = ["Handler", "Request", "serve_requests"]

Request = tuple[str, dict[str, Any]]
Handler = Callable[..., Awaitable[dict[str, Any]]]


async def serve_requests(
    conn: Connection, name: str, handlers: dict[str, Handler], tick: Callable[[], None]
) -> None:
    """Answer the coordinator's requests until it sends ``close`` (or goes away)."""
    loop = asyncio.get_running_loop()
    inbox: asyncio.Queue[Request] = asyncio.Queue()

    def read() -> None:
        while True:
            try:
                request: Request = conn.recv()
            except (EOFError, OSError):
                request = ("close", {})
            loop.call_soon_threadsafe(inbox.put_nowait, request)
            if request[0] == "close":
                return

    async def ticking() -> None:
        while True:
            await asyncio.sleep(1.0)
            tick()

    threading.Thread(target=read, daemon=True).start()
    ticker = asyncio.create_task(ticking())
    conn.send(("spawned", {"name": name}))
    while True:
        op, args = await inbox.get()
        try:
            result = await handlers[op](**args)
        except Exception as exc:  # noqa: BLE001 - reported to the coordinator, which stops
            result = {"error": f"{type(exc).__name__}: {exc}", "trace": traceback.format_exc()}
        if op == "close":
            ticker.cancel()
            with contextlib.suppress(OSError):
                conn.send((op, result))
            return
        conn.send((op, result))
