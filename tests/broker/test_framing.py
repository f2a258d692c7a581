"""PacketSplitter on its own: packets come out whole however the bytes are cut.

The broker reads from the transport's ``data_received`` (and the WebSocket's frames), which
hand over whatever arrived: half a fixed header, three packets and a bit, one byte at a time.
"""

from __future__ import annotations

import pytest

from hub.broker.framing import PacketSplitter, ProtocolViolation
from tests.broker.wire import PINGREQ_PACKET, connect_packet, packet, publish_packet

STREAM = [
    connect_packet("slow", keepalive=30),
    publish_packet("a/b", b"x" * 300, qos=1, packet_id=7),
    PINGREQ_PACKET,
    publish_packet("a/c", b"", qos=0),
    packet(0x82, b"\x00\x01\x00\x03a/b\x01"),
]


def _split(data: bytes, cut: int) -> list[tuple[int, bytes]]:
    splitter = PacketSplitter(max_packet_size=1024)
    out: list[tuple[int, bytes]] = []
    for start in range(0, len(data), cut):
        out += splitter.feed(data[start : start + cut])
    return out


@pytest.mark.parametrize("cut", [1, 2, 3, 7, 64, 10_000])
def test_packets_survive_any_cut(cut: int) -> None:
    data = b"".join(STREAM)
    got = _split(data, cut)
    assert [bytes([first]) for first, _ in got] == [p[:1] for p in STREAM]
    rebuilt = [
        bytes([f]) + _length_bytes(p) + body for (f, body), p in zip(got, STREAM, strict=True)
    ]
    assert b"".join(rebuilt) == data


def _length_bytes(raw: bytes) -> bytes:
    end = 1
    while raw[end] & 0x80:
        end += 1
    return raw[1 : end + 1]


def test_oversized_packet_is_refused_on_its_length() -> None:
    splitter = PacketSplitter(max_packet_size=1024)
    splitter.feed(connect_packet("big"))
    huge = publish_packet("big/huge", bytes(1 << 20))
    with pytest.raises(ProtocolViolation, match="exceeds the maximum"):
        splitter.feed(huge[:5])  # the fixed header only: no body read


def test_second_connect_is_refused_even_when_split() -> None:
    splitter = PacketSplitter(max_packet_size=1024)
    first = connect_packet("twice")
    assert len(splitter.feed(first[:3]) + splitter.feed(first[3:])) == 1
    with pytest.raises(ProtocolViolation, match="second CONNECT"):
        splitter.feed(first[:1])
