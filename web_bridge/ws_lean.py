"""``GET /mqtt`` without ASGI: MQTT over WebSocket served inside uvicorn's WebSocket protocol.

Through ASGI every frame costs a ``websocket.receive`` message, Starlette's layers, an
``await`` in the bridge's stream and a ``pause_reading``/``resume_reading`` pair (two
``epoll_ctl``) in uvicorn; every batch out an ``await`` chain down to ``transport.write``.
Here ``LeanMqttProtocol`` (uvicorn's ``websockets-sansio`` protocol, whose Sans-I/O
``websockets.ServerProtocol`` still does the handshake, the parsing, masks, ping/pong and
the closing handshake) hands each binary message to the broker's connection by a plain
call (``FrameGateway.open_frames``), and writes what the broker batches as one binary frame
per batch. No permessage-deflate is negotiated on ``/mqtt`` (browsers offer it; a
compressor per phone would undo the broker's encode-once of each message). Every other
WebSocket path goes through ASGI unchanged; the pages and ``/mqtt`` keep one origin and one port.

The route's rules hold here too (``web_bridge.ws_mqtt``, which serves ``/mqtt`` when the
broker cannot take frames directly): the subprotocol ``mqtt`` is required (close 1002),
frames must be binary (1003), a message may not exceed ``max_frame_bytes`` (1009, from
websockets' ``max_size``), and the same ``WebSocketGate`` bounds logged-in and not yet
logged-in connections (1013) and feeds the same metrics. ``X-Forwarded-For`` is believed
from uvicorn's trusted proxies only, as its ``ProxyHeadersMiddleware`` does for ASGI.
"""

from __future__ import annotations

import logging
import struct
from dataclasses import dataclass
from typing import Any, ClassVar
from urllib.parse import unquote

from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.exceptions import InvalidState
from websockets.frames import Frame
from websockets.http11 import Request
from websockets.protocol import State

from web_bridge.ports import FrameGateway, FrameReceiver
from web_bridge.ws_mqtt import (
    CLOSE_PROTOCOL_ERROR,
    CLOSE_TRY_AGAIN_LATER,
    CLOSE_UNSUPPORTED_DATA,
    MQTT_PATH,
    SUBPROTOCOL,
    WebSocketGate,
    accepted_connack,
)

__all__ = ["LeanMqttProtocol", "lean_protocol"]

_LOGGER = logging.getLogger(__name__)
_CLOSE_NORMAL = 1000
_FIN_BINARY = 0x82
_HEADER_16 = struct.Struct("!BBH")
_HEADER_64 = struct.Struct("!BBQ")


class _LastFrame:
    """The last message framed and its frame: a state message goes to every subscribed
    phone in a row (the broker encodes it once), so it is framed once, not 500 times."""

    data: bytes | None = None
    frame = b""


def _binary_frame(data: bytes) -> bytes:
    """``data`` as one unmasked, unfragmented binary frame: its 2-10 byte header and the
    data (RFC 6455 5.2; 0.2 µs, against 2.5 µs in websockets' ``Frame.serialize``)."""
    if data is _LastFrame.data:
        return _LastFrame.frame
    size = len(data)
    if size < 126:
        header = bytes((_FIN_BINARY, size))
    elif size < 65_536:
        header = _HEADER_16.pack(_FIN_BINARY, 126, size)
    else:
        header = _HEADER_64.pack(_FIN_BINARY, 127, size)
    frame = header + data
    _LastFrame.data, _LastFrame.frame = data, frame
    return frame


@dataclass(frozen=True, slots=True)
class _Endpoint:
    gateway: FrameGateway
    gate: WebSocketGate


def lean_protocol(gateway: FrameGateway, gate: WebSocketGate) -> type[LeanMqttProtocol]:
    """The uvicorn ``ws`` protocol class serving ``/mqtt`` straight into ``gateway``."""

    class BoundLeanMqttProtocol(LeanMqttProtocol):
        endpoint = _Endpoint(gateway, gate)

    return BoundLeanMqttProtocol


async def _never_called(_scope: Any, _receive: Any, _send: Any) -> None:  # pragma: no cover
    return None


class LeanMqttProtocol(WebSocketsSansIOProtocol):
    """uvicorn's websockets-sansio protocol, serving ``/mqtt`` itself (see the module
    docstring); it is the broker's ``FrameSink`` for that connection."""

    endpoint: ClassVar[_Endpoint]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._lean = False  # this connection is /mqtt, served here
        self._mqtt: FrameReceiver | None = None
        self._pending = False  # counted in the gate as not logged in yet
        self._open = False  # counted in the gate as logged in
        self._answered = False
        self._peer: tuple[str, int] = ("websocket", 0)
        self._trusted = (
            ProxyHeadersMiddleware(_never_called, self.config.forwarded_allow_ips).trusted_hosts
            if self.config.proxy_headers
            else None
        )

    # --- FrameSink (the broker writes) ---------------------------------------------------------
    @property
    def peer(self) -> tuple[str, int]:
        return self._peer

    def write(self, data: bytes) -> None:
        # called from the broker's Flusher: never raise (the peer's close frame, answered in
        # handle_close, leaves websockets' state CLOSING before the transport is lost)
        if self.close_sent or self.transport.is_closing():
            return
        if not self._answered:
            self._answered = True
            if accepted_connack(data):
                self._logged_in()
        if self.conn.state is not State.OPEN:
            return
        if self.conn.extensions:  # pragma: no cover - none is negotiated on /mqtt
            self.conn.send_binary(data)
            self.transport.write(b"".join(self.conn.data_to_send()))
            return
        self.transport.write(_binary_frame(data))

    def close(self) -> None:
        self._close(_CLOSE_NORMAL, "")

    def pause_reading(self) -> None:
        if not self.close_sent:  # a closing connection reads on, for the peer's close frame
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        self.transport.resume_reading()

    # --- the handshake -------------------------------------------------------------------------
    def handle_connect(self, event: Request) -> None:
        raw_path = event.path.partition("?")[0]
        if unquote(raw_path) != MQTT_PATH:
            super().handle_connect(event)
            return
        # no permessage-deflate on /mqtt: a compressor per phone would compress each state
        # message 500 times (the broker encodes it once), for a LAN's few hundred bytes
        self.conn.available_extensions = []
        response = self.conn.accept(event)
        if response.status_code != 101:  # not a valid upgrade: uvicorn answers it
            super().handle_connect(event)
            return
        self.request = event
        self.response = response
        self.handshake_initiated = True
        self._lean = True
        self._peer = self._client_address(event)
        offered = [
            token.strip()
            for header in event.headers.get_all("Sec-WebSocket-Protocol")
            for token in header.split(",")
        ]
        del response.headers["Date"]
        response.headers.update(
            (name.decode("latin-1").lower(), value.decode("latin-1"))
            for name, value in self.default_headers
        )
        if SUBPROTOCOL in offered:
            response.headers["Sec-WebSocket-Protocol"] = SUBPROTOCOL
        self.handshake_complete = True
        self.conn.send_response(response)
        self.transport.write(b"".join(self.conn.data_to_send()))
        self.logger.info('%s:%d - "WebSocket %s" [accepted]', *self._peer, MQTT_PATH)
        if SUBPROTOCOL not in offered:
            self._close(CLOSE_PROTOCOL_ERROR, "offer the WebSocket subprotocol 'mqtt'")
            return
        gate = self.endpoint.gate
        if gate.refuses():
            self._close(CLOSE_TRY_AGAIN_LATER, "too many connections; try again later")
            return
        gate.pending += 1
        self._pending = True
        self.conn.max_size = self.endpoint.gateway.max_frame_bytes  # 1009 beyond it
        self.start_keepalive()
        self._mqtt = self.endpoint.gateway.open_frames(self)

    def _client_address(self, event: Request) -> tuple[str, int]:
        client = self.client or ("websocket", 0)
        if self._trusted is not None and client[0] in self._trusted:
            forwarded = ", ".join(event.headers.get_all("X-Forwarded-For"))
            if forwarded:
                host, port = self._trusted.get_trusted_client_address(forwarded)
                if host:
                    return host, port
        return client

    # --- frames --------------------------------------------------------------------------------
    def handle_bytes(self, event: Frame) -> None:
        if not self._lean:
            super().handle_bytes(event)
        elif event.fin:
            self._deliver(event.data)
        else:
            self.frames = [bytes(event.data)]

    def handle_cont(self, event: Frame) -> None:
        if not self._lean:
            super().handle_cont(event)
            return
        self.frames.append(bytes(event.data))
        if event.fin:
            data = b"".join(self.frames)
            self.frames = []
            self._deliver(data)

    def handle_text(self, event: Frame) -> None:
        if not self._lean:
            super().handle_text(event)
            return
        self._close(CLOSE_UNSUPPORTED_DATA, "MQTT needs binary frames, not text")

    def _deliver(self, data: bytes | bytearray | memoryview) -> None:
        mqtt = self._mqtt
        if mqtt is not None and data and not self.close_sent:
            mqtt.received(data if type(data) is bytes else bytes(data))

    def handle_parser_exception(self) -> None:
        if self._lean and self.conn.close_sent is not None:
            close = self.conn.close_sent
            _LOGGER.warning(
                "closing the MQTT WebSocket of %s: %d %s", self._peer[0], close.code, close.reason
            )
        super().handle_parser_exception()

    # --- flow control and the end --------------------------------------------------------------
    def pause_writing(self) -> None:
        super().pause_writing()
        if self._mqtt is not None:
            self._mqtt.writing_paused()

    def resume_writing(self) -> None:
        super().resume_writing()
        if self._mqtt is not None:
            self._mqtt.writing_resumed()

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        mqtt, self._mqtt = self._mqtt, None
        if mqtt is not None:
            mqtt.lost()
        gate = self.endpoint.gate
        if self._open:
            self._open = False
            gate.open -= 1
        if self._pending:
            self._pending = False
            gate.pending -= 1

    def _logged_in(self) -> None:
        if self._pending:
            gate = self.endpoint.gate
            self._pending = False
            gate.pending -= 1
            self._open = True
            gate.open += 1

    def _close(self, code: int, reason: str) -> None:
        """Send a close frame; the peer's answer (or ``close_timeout``) ends the transport."""
        if self.close_sent or self.disconnected:
            return
        if code != _CLOSE_NORMAL:
            _LOGGER.warning("closing the MQTT WebSocket of %s: %d %s", self._peer[0], code, reason)
        try:
            self.conn.send_close(code, reason)
        except InvalidState:  # already closing on the websockets side
            self.transport.close()
            return
        self.transport.write(b"".join(self.conn.data_to_send()))
        self.close_sent = True
        self.transport.resume_reading()  # for the peer's close frame
        self.close_timer = self.loop.call_later(self.close_timeout, self.transport.abort)
