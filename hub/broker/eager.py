"""Run a coroutine at once, up to its first real suspension, and only then in a task.

What Python 3.12's ``asyncio.eager_task_factory`` does, for one call site on Python 3.11:
sending a batch to a WebSocket client goes through several ``async def`` layers
(Starlette's ``send_bytes``, uvicorn's ``send``) that almost never suspend. A task per
client per batch (500 tasks for one state message to 500 phones) cost more CPU than the
sends themselves; run eagerly, a send that does not suspend costs no task at all.
"""

from __future__ import annotations

import asyncio
import types
from collections.abc import Coroutine, Generator
from typing import Any

__all__ = ["start_eagerly"]


def start_eagerly(coro: Coroutine[Any, Any, None]) -> asyncio.Task[None] | None:
    """Run ``coro`` until it completes (None) or first waits for something (a task that
    carries on from there). Exceptions raised before the first wait propagate."""
    try:
        waiting_for = coro.send(None)
    except StopIteration:
        return None
    return asyncio.ensure_future(_carry_on(coro, waiting_for))


@types.coroutine
def _carry_on(coro: Coroutine[Any, Any, None], waiting_for: Any) -> Generator[Any, Any, None]:
    """Delegate to a coroutine that already yielded ``waiting_for`` (``yield from`` on a
    started coroutine): results and exceptions (cancellation) are passed through."""
    while True:
        try:
            sent = yield waiting_for
        except GeneratorExit:
            coro.close()
            raise
        except BaseException as exc:  # noqa: BLE001 - handed to the coroutine, as yield from does
            try:
                waiting_for = coro.throw(exc)
            except StopIteration:
                return
        else:
            try:
                waiting_for = coro.send(sent)
            except StopIteration:
                return
