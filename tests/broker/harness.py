"""Brokers under test, each running in its own thread and event loop.

``hub``: the hub's ``EmbeddedBroker``. ``stock``: a plain ``amqtt.broker.Broker`` with the
same listeners and auth plugin, given amqtt's own equivalent of an option where it has one
(``max_connections``); everything else at amqtt's defaults.
"""

from __future__ import annotations

import asyncio
import gc
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any, Literal, TypeVar

from amqtt.broker import Broker

from hub.broker import BrokerOptions, EmbeddedBroker
from tests.broker.wire import RawClient

__all__ = ["Kind", "RunningBroker", "stock_config"]

Kind = Literal["hub", "stock"]
T = TypeVar("T")
_START_TIMEOUT = 10.0
_STOP_TIMEOUT = 20.0


def stock_config(options: BrokerOptions) -> dict[str, Any]:
    return {
        "listeners": {
            "default": {
                "type": "tcp",
                "bind": f"{options.bind}:0",
                "max_connections": options.max_connections,
            },
            "websocket": {"type": "external"},
        },
        "plugins": {
            "hub.broker.auth.OpenAuthPlugin": {},
            **{path: dict(config) for path, config in options.extra_plugins.items()},
        },
    }


class RunningBroker:
    """A started broker; ``client()`` opens raw connections that ``stop()`` closes first."""

    def __init__(self, kind: Kind, **options: Any) -> None:
        self.kind = kind
        self.options = replace(BrokerOptions(bind="127.0.0.1", port=0), **options)
        self.port = 0
        self.broker: Any = None  # the amqtt Broker (a HubBroker for "hub")
        self._clients: list[RawClient] = []
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._leftovers = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._thread_main, name=f"broker-{kind}")

    def start(self) -> None:
        self._thread.start()
        if not self._ready.wait(_START_TIMEOUT):
            raise RuntimeError("the broker did not start")
        if self._error is not None:
            self._thread.join(_STOP_TIMEOUT)
            raise RuntimeError("the broker did not start") from self._error

    def stop(self) -> None:
        for client in self._clients:
            client.close()
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(_STOP_TIMEOUT)
        if self._thread.is_alive():
            raise RuntimeError("the broker thread did not stop")
        if self._error is not None:
            raise RuntimeError("the broker failed") from self._error
        if self.kind == "hub" and self._leftovers:
            raise AssertionError(f"the hub left {self._leftovers} connection(s) open")

    def client(self, *, receive_buffer: int | None = None) -> RawClient:
        client = RawClient(self.port, receive_buffer=receive_buffer)
        self._clients.append(client)
        return client

    def run(self, work: Callable[[Any], Awaitable[T]], timeout: float = 5.0) -> T:
        """Await ``work(broker)`` on the broker's loop."""
        assert self._loop is not None

        async def call() -> T:
            return await work(self.broker)

        return asyncio.run_coroutine_threadsafe(call(), self._loop).result(timeout)

    def call(self, work: Callable[[Any], T]) -> T:
        """Run ``work(broker)`` on the broker's loop."""

        async def call(broker: Any) -> T:
            return work(broker)

        return self.run(call)

    def wait_until(self, predicate: Callable[[Any], bool], timeout: float) -> bool:
        """Poll ``predicate(broker)`` on the broker's loop until it holds or time runs out."""
        deadline = time.monotonic() + timeout
        while not self.call(predicate):
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)
        return True

    def session_state(self, client_id: str) -> str | None:
        """ "connected", "disconnected", or None when the broker has no such session."""
        return self.call(lambda broker: _state(broker, client_id))

    def wait_disconnected(self, client_id: str, timeout: float = 3.0) -> bool:
        """Wait until the broker has handled the client's disconnection (will included)."""
        return self.wait_until(lambda broker: _state(broker, client_id) != "connected", timeout)

    def wait_session_gone(self, client_id: str, timeout: float) -> bool:
        return self.wait_until(lambda broker: _state(broker, client_id) is None, timeout)

    def _thread_main(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        try:
            if self.kind == "hub":
                await self._serve_hub()
            else:
                await self._serve_stock()
        except BaseException as exc:
            self._error = exc
            self._ready.set()
        finally:
            self._leftovers = await _abort_open_transports(self._loop)

    async def _serve_hub(self) -> None:
        assert self._stop is not None
        async with EmbeddedBroker(self.options) as embedded:
            self.broker = embedded._broker  # the HubBroker itself, to inspect sessions
            self.port = embedded.port
            self._ready.set()
            await self._stop.wait()

    async def _serve_stock(self) -> None:
        assert self._stop is not None
        broker = Broker(stock_config(self.options))
        await broker.start()
        try:
            self.broker = broker
            self.port = broker._servers["default"].instance.sockets[0].getsockname()[1]
            self._ready.set()
            await self._stop.wait()
        finally:
            await broker.shutdown()


def _state(broker: Any, client_id: str) -> str | None:
    entry = broker.sessions.get(client_id)
    return None if entry is None else str(entry[0].transitions.state)


async def _abort_open_transports(loop: asyncio.AbstractEventLoop) -> int:
    """Abort the broker's sockets still open after shutdown; how many there were.

    Stock amqtt leaves some open (e.g. when a client never sent its CONNECT); the hub must
    not leave any.
    """
    await asyncio.sleep(0)
    leftovers = [
        obj
        for obj in gc.get_objects()
        if isinstance(obj, asyncio.Transport)
        and getattr(obj, "_loop", None) is loop
        and not obj.is_closing()
    ]
    for transport in leftovers:
        transport.abort()
    for _ in range(3):
        await asyncio.sleep(0)
    return len(leftovers)
