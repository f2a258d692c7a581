"""The embedded amqtt broker as an async context manager."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

from amqtt.errors import BrokerError as AmqttBrokerError

from hub.broker.conformance import HubBroker
from hub.broker.errors import BrokerError
from hub.broker.transport import EmbeddedTransport

__all__ = ["BrokerOptions", "EmbeddedBroker"]

_LOGGER = logging.getLogger(__name__)
_TCP_LISTENER = "default"
_WS_LISTENER = "websocket"


@dataclass(frozen=True, slots=True)
class BrokerOptions:
    bind: str = "0.0.0.0"  # noqa: S104 - the table's phones and Pi are on the LAN
    port: int = 1883
    """0 picks a free port; ``EmbeddedBroker.port`` tells which."""


class EmbeddedBroker:
    """Runs amqtt (with the hub's fixes) in the current event loop.

    ``async with EmbeddedBroker(options) as broker:`` listens on ``broker.port``;
    ``broker.transport`` is the state service's in-process link to it.
    """

    def __init__(self, options: BrokerOptions) -> None:
        self._options = options
        self._broker: HubBroker | None = None
        self._transport: EmbeddedTransport | None = None
        self._port: int | None = None

    def _config(self) -> dict[str, Any]:
        return {
            "listeners": {
                _TCP_LISTENER: {
                    "type": "tcp",
                    "bind": f"{self._options.bind}:{self._options.port}",
                },
                _WS_LISTENER: {"type": "external"},
            },
            "plugins": {"hub.broker.auth.OpenAuthPlugin": {}},
        }

    @property
    def port(self) -> int:
        if self._port is None:
            msg = "the broker is not running"
            raise BrokerError(msg)
        return self._port

    @property
    def transport(self) -> EmbeddedTransport:
        if self._transport is None:
            msg = "the broker is not running"
            raise BrokerError(msg)
        return self._transport

    async def __aenter__(self) -> Self:
        broker = HubBroker(self._config())
        try:
            await broker.start()
        except AmqttBrokerError as exc:
            msg = (
                f"cannot start the MQTT broker on {self._options.bind}:{self._options.port}: {exc}"
            )
            raise BrokerError(msg) from exc
        self._broker = broker
        server: asyncio.Server = broker._servers[_TCP_LISTENER].instance
        self._port = int(server.sockets[0].getsockname()[1])
        self._transport = EmbeddedTransport(broker)
        _LOGGER.info("MQTT broker listening on %s:%d", self._options.bind, self._port)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._transport is not None:
            self._transport.close()
        if self._broker is not None:
            await self._broker.shutdown()
        self._broker = None
        self._transport = None
        self._port = None
