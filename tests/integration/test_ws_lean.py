"""``/mqtt`` of the embedded hub, served inside uvicorn's WebSocket protocol
(``web_bridge.ws_lean``): the WebSocket rules a phone relies on, with a real ``hub serve``
and the ``websockets`` client speaking raw MQTT packets.

(``test_web_bridge.py`` checks the frame rules, 1003/1009/1002, and the 1013 gate.)
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed, ConnectionClosedOK, InvalidStatus
from websockets.frames import Frame, Opcode
from websockets.streams import StreamReader
from websockets.sync.client import ClientConnection
from websockets.sync.client import connect as ws_connect
from websockets.sync.connection import Connection
from websockets.typing import Subprotocol

from tests.support.http import Http
from tests.support.hub import HubProcess
from tests.support.waiting import wait_until
from web_bridge.ws_lean import _binary_frame

CONNACK_ACCEPTED = b"\x20\x02\x00\x00"
PINGREQ = b"\xc0\x00"
PINGRESP = b"\xd0\x00"
DISCONNECT = b"\xe0\x00"


def _parsed(frame: bytes) -> Frame:
    """``frame`` read back by websockets' own parser, as a client reads it (unmasked);
    it must be one whole frame, nothing left over."""
    reader = StreamReader()
    reader.feed_data(frame)
    reader.feed_eof()
    parser = Frame.parse(reader.read_exact, mask=False)
    with pytest.raises(StopIteration) as done:
        next(parser)
    parsed: Frame = done.value.value
    leftover = reader.read_to_eof(2**20)
    with pytest.raises(StopIteration) as rest:
        next(leftover)
    assert rest.value.value == b""
    return parsed


@pytest.mark.parametrize("size", [0, 1, 125, 126, 65_535, 65_536])
def test_binary_frames_have_the_right_header_at_each_length_boundary(size: int) -> None:
    data = (bytes(range(256)) * (size // 256 + 1))[:size]
    frame = _parsed(_binary_frame(data))
    assert (frame.opcode, frame.fin, bytes(frame.data)) == (Opcode.BINARY, True, data)


def test_a_message_is_framed_once_for_its_subscribers_and_a_new_one_afresh() -> None:
    state = b"\x30\x05\x00\x01t{}}"
    first = _binary_frame(state)
    assert _binary_frame(state) is first  # the same message to the next phone
    equal_but_new = bytes(bytearray(state))
    assert equal_but_new is not state
    assert _binary_frame(equal_but_new) == first
    other = b"\x30\x05\x00\x01u{}}"
    assert bytes(_parsed(_binary_frame(other)).data) == other
    assert bytes(_parsed(_binary_frame(state)).data) == state  # back to the first one


@pytest.fixture
def hub(data_dir: Path) -> Iterator[HubProcess]:
    with HubProcess(data_dir) as running:
        yield running


def _ws(hub: HubProcess, **kwargs: Any) -> ClientConnection:
    return ws_connect(
        f"ws://127.0.0.1:{hub.http_port}/mqtt",
        subprotocols=[Subprotocol("mqtt")],
        open_timeout=10,
        **kwargs,
    )


def _string(text: str) -> bytes:
    data = text.encode()
    return len(data).to_bytes(2, "big") + data


def _connect_packet(session: dict[str, Any]) -> bytes:
    """MQTT 3.1.1 CONNECT, clean session, username and password, keep-alive 60 s."""
    body = _string("MQTT") + bytes([4, 0xC2]) + (60).to_bytes(2, "big")
    body += _string(session["client_id"]) + _string(session["client_id"])
    body += _string(session["token"])
    assert len(body) < 128  # one byte of remaining length
    return bytes([0x10, len(body)]) + body


def _read(ws: Connection, size: int) -> bytes:
    """``size`` bytes of the broker's stream, over however many binary messages."""
    data = b""
    while len(data) < size:
        message = ws.recv(timeout=10)
        assert isinstance(message, bytes)
        data += message
    return data


def _drain_until_closed(ws: Connection) -> ConnectionClosed:
    while True:
        try:
            ws.recv(timeout=10)
        except ConnectionClosed as closed:
            return closed


def _metric(http: Http, name: str) -> float:
    _, text = http("GET", "/metrics")
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(name)


def test_mqtt_packets_may_be_fragmented_split_and_batched(hub: HubProcess) -> None:
    session = Http(hub).session("Gil")
    with _ws(hub) as ws:
        connect = _connect_packet(session)
        ws.send([connect[:3], connect[3:20], connect[20:]])  # one message in three frames
        assert _read(ws, 4) == CONNACK_ACCEPTED
        ws.send(PINGREQ[:1])  # one packet over two messages
        ws.send(PINGREQ[1:])
        assert _read(ws, 2) == PINGRESP
        ws.send(PINGREQ * 3)  # three packets in one message
        assert _read(ws, 6) == PINGRESP * 3
        ws.send(DISCONNECT)
        with pytest.raises(ConnectionClosedOK) as closed:  # the broker closes: 1000
            ws.recv(timeout=10)
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 1000


def test_ping_close_and_the_gauges(hub: HubProcess) -> None:
    http = Http(hub)
    session = http.session("Hal")
    with _ws(hub) as ws:
        assert ws.subprotocol == "mqtt"
        assert ws.protocol.extensions == []  # offered permessage-deflate, not taken
        assert ws.ping().wait(10)
        wait_until(lambda: _metric(http, "tablehub_websocket_unauthenticated") == 1)
        ws.send(_connect_packet(session))
        assert _read(ws, 4) == CONNACK_ACCEPTED
        wait_until(lambda: _metric(http, "tablehub_websocket_connections") == 1)
        assert _metric(http, "tablehub_websocket_unauthenticated") == 0
        ws.close()  # the client's closing handshake, answered
        assert ws.protocol.close_rcvd is not None
        assert ws.protocol.close_rcvd.code == 1000
    wait_until(lambda: _metric(http, "tablehub_websocket_connections") == 0, what="gauge 0")
    assert _metric(http, "tablehub_websocket_unauthenticated") == 0


def test_other_websocket_paths_are_not_taken_for_mqtt(hub: HubProcess) -> None:
    with pytest.raises(InvalidStatus) as refused:  # the ASGI app has no such route
        ws_connect(
            f"ws://127.0.0.1:{hub.http_port}/mqtt/x",
            subprotocols=[Subprotocol("mqtt")],
            open_timeout=10,
        )
    assert refused.value.response.status_code == 403


def test_shutdown_closes_mqtt_websockets_politely(data_dir: Path) -> None:
    with HubProcess(data_dir) as hub:
        session = Http(hub).session("Ida")
        with _ws(hub) as ws:
            ws.send(_connect_packet(session))
            assert _read(ws, 4) == CONNACK_ACCEPTED
            hub.signal(signal.SIGTERM)
            closed = _drain_until_closed(ws)  # the hub's last messages, then the close
            assert closed.rcvd is not None
            assert closed.rcvd.code == 1012  # "service restart", as uvicorn's ASGI path
        assert hub.wait_exit(20)[0] == 0


def test_a_trusted_proxy_names_the_phone(data_dir: Path) -> None:
    forwarded = {"X-Forwarded-For": "203.0.113.9"}
    with HubProcess(data_dir, env={"HUB_TRUSTED_PROXIES": '["127.0.0.1"]'}) as hub:
        with _ws(hub, additional_headers=forwarded) as ws:
            ws.send("text")
            with pytest.raises(ConnectionClosed):
                ws.recv(timeout=10)
        wait_until(lambda: "closing the MQTT WebSocket of 203.0.113.9: 1003" in hub.log_text())


def test_an_untrusted_forwarded_address_is_ignored(hub: HubProcess) -> None:
    with _ws(hub, additional_headers={"X-Forwarded-For": "203.0.113.9"}) as ws:
        ws.send("text")
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout=10)
    wait_until(lambda: "closing the MQTT WebSocket of 127.0.0.1: 1003" in hub.log_text())
    assert "203.0.113.9" not in hub.log_text()
