"""A PUBLISH the broker must refuse closes the connection (and publishes the will).

Stock amqtt raises halfway through such a packet and parses the rest as new packets
(here: the payload is a PINGREQ, and stock amqtt answers it), or leaves its message loop
without closing: either way the connection lives on as a zombie.
"""

from __future__ import annotations

import pytest

from tests.broker.conftest import StartBroker
from tests.broker.wire import (
    PINGREQ_PACKET,
    RawClient,
    Will,
    connect_packet,
    packet,
    publish_packet,
)

BAD_PACKETS = [
    pytest.param(publish_packet("a/+", PINGREQ_PACKET), id="plus-wildcard-topic"),
    pytest.param(publish_packet("a/#", PINGREQ_PACKET), id="hash-wildcard-topic"),
    pytest.param(publish_packet("", PINGREQ_PACKET), id="empty-topic"),
    pytest.param(publish_packet("a/b", PINGREQ_PACKET, qos=3), id="qos-3"),
    pytest.param(b"\x30\xff\xff\xff\xff", id="remaining-length-over-4-bytes"),
    pytest.param(packet(0x82, b"\x00\x01\x00\x09a"), id="field-overruns-packet"),
    pytest.param(packet(0xC0, PINGREQ_PACKET), id="pingreq-with-a-body"),
    pytest.param(packet(0x80, b"\x00\x01\x00\x01a\x00"), id="subscribe-with-wrong-flags"),
    pytest.param(packet(0x20, b"\x00\x00"), id="connack-from-a-client"),
]


def _assert_closed_unanswered(client: RawClient, timeout: float = 10.0) -> None:
    """The broker closed the connection without answering (not even the PINGREQ). A
    connection left open is the failure this asserts on (AssertionError, so a strict xfail
    on stock amqtt cannot pass on the helper's TimeoutError instead)."""
    try:
        got = client.read_packet(timeout=timeout)
    except TimeoutError:
        msg = f"the broker kept the connection open for {timeout} s"
        raise AssertionError(msg) from None
    assert got is None, f"the broker answered {got}"


@pytest.mark.parametrize("bad", BAD_PACKETS)
def test_refused_packet_closes_the_connection(start_broker: StartBroker, bad: bytes) -> None:
    broker = start_broker()
    watcher = broker.client()
    watcher.connect("watcher")
    watcher.subscribe(("will/#", 0))
    offender = broker.client()
    offender.connect("offender", will=Will("will/offender"))

    offender.send(bad + PINGREQ_PACKET)
    _assert_closed_unanswered(offender)
    assert watcher.receive().topic == "will/offender"


def test_first_packet_must_be_connect(start_broker: StartBroker) -> None:
    broker = start_broker()
    client = broker.client()
    client.send(publish_packet("a/b", b"x") + PINGREQ_PACKET)
    _assert_closed_unanswered(client)


def test_second_connect_closes_the_connection(start_hub: StartBroker) -> None:
    # stock amqtt closes too (eventually: it still answers what follows) [MQTT-3.1.0-2]
    broker = start_hub()
    client = broker.client()
    client.connect("twice")
    client.send(connect_packet("twice") + PINGREQ_PACKET)
    _assert_closed_unanswered(client)
