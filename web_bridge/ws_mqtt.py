"""``GET /mqtt``: MQTT over WebSocket (subprotocol ``mqtt``), carried to the broker.

The route checks what the broker cannot see: each WebSocket frame must be binary
(close 1003) and no larger than one MQTT packet of the broker's maximum size (close 1009);
a client that does not offer the ``mqtt`` subprotocol is closed with 1002. A connection is
*unauthenticated* until the broker's first answer is an accepted CONNACK: beyond
``ws_max_unauthenticated`` of those, or ``ws_max_connections`` logged-in ones, a new one is
closed with 1013 "try again later" right after the handshake, so idle sockets cannot take
the places of phones (the broker closes them after ``connect_timeout``). Everything else
(login, keep-alive, packet checks) is the broker's, exactly as for TCP clients.

No receive timeout: a phone may be idle for its whole MQTT keep-alive.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from starlette.websockets import WebSocketState

from web_bridge.ports import Bridge, Metric

__all__ = [
    "CLOSE_MESSAGE_TOO_BIG",
    "CLOSE_PROTOCOL_ERROR",
    "CLOSE_TRY_AGAIN_LATER",
    "CLOSE_UNSUPPORTED_DATA",
    "MQTT_PATH",
    "SUBPROTOCOL",
    "WebSocketGate",
    "WebSocketStream",
    "accepted_connack",
    "ws_router",
]

_LOGGER = logging.getLogger(__name__)
MQTT_PATH = "/mqtt"
SUBPROTOCOL = "mqtt"
CLOSE_PROTOCOL_ERROR = 1002
CLOSE_UNSUPPORTED_DATA = 1003
CLOSE_MESSAGE_TOO_BIG = 1009
CLOSE_TRY_AGAIN_LATER = 1013
_CONNACK = 0x20


def accepted_connack(data: bytes) -> bool:
    """The broker's answer starts with CONNACK (type 2, remaining length 2), return code 0."""
    return len(data) >= 4 and data[0] == _CONNACK and data[1] == 2 and data[3] == 0


class WebSocketStream:
    """A Starlette WebSocket as the byte stream a ``MqttGateway`` carries; ``on_login`` is
    called once when the broker accepts the client's CONNECT."""

    def __init__(
        self,
        websocket: WebSocket,
        *,
        max_frame_bytes: int,
        on_login: Callable[[], None] | None = None,
    ) -> None:
        self._ws = websocket
        self._max_frame_bytes = max_frame_bytes
        self._closed = False
        self._answered = False
        self._on_login = on_login
        client = websocket.client
        self._peer = (client.host, client.port) if client else ("websocket", 0)

    @property
    def peer(self) -> tuple[str, int]:
        return self._peer

    async def receive(self) -> bytes:
        while not self._closed:
            message = await self._ws.receive()
            if message["type"] == "websocket.disconnect":
                self._closed = True
                break
            data = message.get("bytes")
            if data is None:
                await self._close(CLOSE_UNSUPPORTED_DATA, "MQTT needs binary frames, not text")
                break
            if len(data) > self._max_frame_bytes:
                await self._close(
                    CLOSE_MESSAGE_TOO_BIG,
                    f"frame of {len(data)} bytes; the limit is {self._max_frame_bytes}",
                )
                break
            if data:
                return bytes(data)
        return b""

    async def send(self, data: bytes) -> None:
        if self._closed:
            msg = "the WebSocket is closed"
            raise ConnectionResetError(msg)
        if not self._answered:
            self._answered = True
            if self._on_login is not None and accepted_connack(data):
                self._on_login()
        try:
            await self._ws.send_bytes(data)
        except (WebSocketDisconnect, RuntimeError, OSError) as exc:
            self._closed = True
            msg = f"the WebSocket closed: {exc!r}"
            raise ConnectionResetError(msg) from exc

    async def close(self) -> None:
        await self._close(1000, "")

    async def _close(self, code: int, reason: str) -> None:
        if self._closed:
            return
        self._closed = True
        if code != 1000:
            _LOGGER.warning("closing the MQTT WebSocket of %s: %d %s", self._peer[0], code, reason)
        with contextlib.suppress(WebSocketDisconnect, RuntimeError, OSError):
            if self._ws.application_state is WebSocketState.CONNECTED:
                await self._ws.close(code, reason)


class WebSocketGate:
    """Logged-in (``open``) and not yet logged-in (``pending``) WebSockets, each bounded
    (shared with ``web_bridge.ws_lean``, which serves ``/mqtt`` outside ASGI)."""

    def __init__(self, limit: int, pending_limit: int) -> None:
        self.limit = limit
        self.pending_limit = pending_limit
        self.open = 0
        self.pending = 0
        self.refused = 0

    def full(self) -> bool:
        return self.open >= self.limit or self.pending >= self.pending_limit

    def refuses(self) -> bool:
        """Whether a new WebSocket must be refused (1013) now; counted and logged if so."""
        if not self.full():
            return False
        self.refused += 1
        _LOGGER.warning(
            "refusing an MQTT WebSocket: %d logged in (ws_max_connections), "
            "%d not yet (ws_max_unauthenticated)",
            self.open,
            self.pending,
        )
        return True


def ws_router(
    bridge: Bridge, gate: WebSocketGate | None = None
) -> tuple[APIRouter, Callable[[], list[Metric]]]:
    """The ``/mqtt`` route, and a function for its metrics (``gate``'s counts)."""
    router = APIRouter()
    if gate is None:
        gate = WebSocketGate(bridge.ws_max_connections, bridge.ws_max_unauthenticated)

    async def refuse(websocket: WebSocket, code: int, reason: str) -> None:
        # A close frame rather than an HTTP denial response: uvicorn's websockets-sansio
        # logs every denial as an error ("returned without completing handshake").
        offered = websocket.scope.get("subprotocols", [])
        await websocket.accept(subprotocol=SUBPROTOCOL if SUBPROTOCOL in offered else None)
        await websocket.close(code, reason)

    @router.websocket(MQTT_PATH)
    async def mqtt_over_websocket(websocket: WebSocket) -> None:
        if SUBPROTOCOL not in websocket.scope.get("subprotocols", []):
            await refuse(websocket, CLOSE_PROTOCOL_ERROR, "offer the WebSocket subprotocol 'mqtt'")
            return
        if gate.refuses():
            await refuse(websocket, CLOSE_TRY_AGAIN_LATER, "too many connections; try again later")
            return
        gate.pending += 1
        logged_in = False

        def on_login() -> None:
            nonlocal logged_in
            logged_in = True
            gate.pending -= 1
            gate.open += 1

        try:
            await websocket.accept(subprotocol=SUBPROTOCOL)
            stream = WebSocketStream(
                websocket, max_frame_bytes=bridge.gateway.max_frame_bytes, on_login=on_login
            )
            await bridge.gateway.serve(stream)
            await stream.close()
        finally:
            if logged_in:
                gate.open -= 1
            else:
                gate.pending -= 1

    def metrics() -> list[Metric]:
        return [
            Metric(
                "tablehub_websocket_connections",
                "gauge",
                "MQTT-over-WebSocket connections open and logged in",
                (({}, float(gate.open)),),
            ),
            Metric(
                "tablehub_websocket_unauthenticated",
                "gauge",
                "MQTT-over-WebSocket connections open, not logged in yet",
                (({}, float(gate.pending)),),
            ),
            Metric(
                "tablehub_websocket_refused_total",
                "counter",
                "MQTT-over-WebSocket connections refused (too many, or too many not logged in)",
                (({}, float(gate.refused)),),
            ),
        ]

    return router, metrics
