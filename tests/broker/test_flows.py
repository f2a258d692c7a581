"""QoS flows, redelivery, take-over, slow acknowledgers, and per-delivery ACL checks.

The hub's broker handles these itself (``handler.py``, ``connections.py``); the tests
taking ``kind`` also show where stock amqtt 0.12.1 gets it wrong.
"""

from __future__ import annotations

import struct
import time

import pytest

from tests.broker.conftest import StartBroker
from tests.broker.wire import (
    PUBACK,
    PUBCOMP,
    PUBLISH,
    PUBREC,
    PUBREL,
    Packet,
    RawClient,
    Will,
    connect_packet,
    decode_publish,
    packet,
    publish_packet,
)


def _pid(body: bytes) -> bytes:
    return body[:2]


def _read_publish(client: RawClient, timeout: float = 3.0) -> tuple[Packet, int]:
    """The next PUBLISH, not acknowledged, and its packet id."""
    got = client.read_packet(timeout)
    assert got is not None
    assert got.kind == PUBLISH, got
    pid = decode_publish(got).packet_id
    assert pid is not None
    return got, pid


def test_qos2_publish_is_routed_exactly_once(start_hub: StartBroker) -> None:
    broker = start_hub()
    subscriber = broker.client()
    subscriber.connect("subscriber")
    subscriber.subscribe(("q2/#", 2))
    publisher = broker.client()
    publisher.connect("publisher")

    publisher.send(publish_packet("q2/x", b"once", qos=2, packet_id=9))
    assert _pid(publisher.expect(PUBREC).body) == b"\x00\x09"
    duplicate = bytearray(publish_packet("q2/x", b"once", qos=2, packet_id=9))
    duplicate[0] |= 0x08  # DUP: the client did not see the PUBREC
    publisher.send(bytes(duplicate))
    assert _pid(publisher.expect(PUBREC).body) == b"\x00\x09"
    publisher.send(packet(0x62, b"\x00\x09"))  # PUBREL
    assert _pid(publisher.expect(PUBCOMP).body) == b"\x00\x09"

    got, pid = _read_publish(subscriber)
    message = decode_publish(got)
    assert (message.topic, message.payload, message.qos) == ("q2/x", b"once", 2)
    subscriber.send(packet(0x50, struct.pack("!H", pid)))  # PUBREC
    assert subscriber.expect(PUBREL).body == struct.pack("!H", pid)
    subscriber.send(packet(0x70, struct.pack("!H", pid)))  # PUBCOMP
    assert subscriber.barrier() == []  # no second copy


def test_unacknowledged_delivery_is_resent_on_resume(start_hub: StartBroker) -> None:
    broker = start_hub()
    first = broker.client()
    first.connect("keeper", clean=False)
    first.subscribe(("r/#", 1))
    publisher = broker.client()
    publisher.connect("publisher")
    publisher.publish("r/1", b"one", qos=1)
    got, _pid_first = _read_publish(first)  # never acknowledged
    assert not got.flags & 0x08
    first.close()  # gone without DISCONNECT
    assert broker.wait_disconnected("keeper")

    again = broker.client()
    assert again.connect("keeper", clean=False).session_present
    resent, pid = _read_publish(again)
    message = decode_publish(resent)
    assert (message.topic, message.payload, message.qos) == ("r/1", b"one", 1)
    assert resent.flags & 0x08  # DUP [MQTT-4.4.0-1]
    again.send(packet(0x40, struct.pack("!H", pid)))
    assert again.barrier() == []


def test_client_that_does_not_acknowledge_loses_messages_not_its_connection(
    start_hub: StartBroker,
) -> None:
    broker = start_hub(max_queued_messages=5)
    slow = broker.client()
    slow.connect("slow")
    slow.subscribe(("s/#", 1))
    publisher = broker.client()
    publisher.connect("publisher")
    for n in range(8):
        publisher.publish(f"s/{n}", b"x", qos=1)
    publisher.barrier()  # all routed

    pids = [_read_publish(slow)[1] for _ in range(5)]
    with pytest.raises(TimeoutError):  # 6 and 7 were dropped: 5 are in flight
        slow.read_packet(timeout=0.3)
    for pid in pids:
        slow.send(packet(0x40, struct.pack("!H", pid)))
    publisher.publish("s/8", b"y", qos=1)
    assert [(m.topic, m.payload) for m in slow.barrier()] == [("s/8", b"y")]
    assert broker.session_state("slow") == "connected"


def test_client_id_in_use_closes_the_older_connection(kind: str, start_broker: StartBroker) -> None:
    broker = start_broker()
    first = broker.client()
    assert first.connect("same", will=Will("will/same")).return_code == 0
    second = broker.client()
    assert second.connect("same").return_code == 0
    # [MQTT-3.1.4-2]: stock amqtt keeps both, the older one a zombie without a session
    assert first.wait_closed(timeout=2.0)
    second.subscribe(("t/#", 0))
    second.publish("t/x", b"x")
    assert [m.topic for m in second.barrier()] == ["t/x"]


def test_repeated_subscribe_replaces_the_qos(kind: str, start_broker: StartBroker) -> None:
    broker = start_broker()
    subscriber = broker.client()
    subscriber.connect("subscriber")
    subscriber.subscribe(("rq/#", 0))
    subscriber.subscribe(("rq/#", 1))  # [MQTT-3.8.4-3]
    publisher = broker.client()
    publisher.connect("publisher")
    publisher.publish("rq/x", b"x", qos=1)
    assert [(m.topic, m.qos) for m in subscriber.barrier()] == [("rq/x", 1)]


def test_receive_acl_is_checked_for_every_topic_of_a_wide_filter(start_hub: StartBroker) -> None:
    broker = start_hub(
        extra_plugins={"tests.broker.plugins.DenyTopics": {"receive": ["private/x"]}}
    )
    watcher = broker.client()
    watcher.connect("watcher")
    watcher.subscribe(("#", 0))
    publisher = broker.client()
    publisher.connect("publisher")
    for _ in range(3):  # the verdicts are cached: the second time must agree with the first
        publisher.publish("private/x", b"p", qos=1)  # routed once acknowledged
        publisher.publish("public/x", b"q", qos=1)
    got = [m.topic for m in watcher.barrier()]
    assert got == ["public/x"] * 3


def test_denied_publish_is_checked_every_time(start_hub: StartBroker) -> None:
    broker = start_hub(extra_plugins={"tests.broker.plugins.DenyTopics": {"publish": ["no/x"]}})
    watcher = broker.client()
    watcher.connect("watcher")
    watcher.subscribe(("no/#", 0), ("yes/#", 0))
    publisher = broker.client()
    publisher.connect("publisher")
    for _ in range(2):
        publisher.publish("no/x", b"denied", qos=1)  # acknowledged all the same
        publisher.publish("yes/x", b"fine", qos=1)
    assert [m.topic for m in watcher.barrier()] == ["yes/x", "yes/x"]


def test_dollar_topic_publish_is_routed_past_wildcards(start_broker: StartBroker) -> None:
    # stock amqtt leaves the client's message loop on a "$" topic, unacknowledged; the ACL
    # decides who may publish there, and "#"/"+" never match it [MQTT-4.7.2-1]
    broker = start_broker(
        extra_plugins={"tests.broker.plugins.DenyTopics": {"publish": ["$denied/x"]}}
    )
    exact, wild = broker.client(), broker.client()
    exact.connect("exact")
    exact.subscribe(("$hub/x", 1), ("$denied/x", 1))
    wild.connect("wild")
    wild.subscribe(("#", 1), ("+/x", 1))
    publisher = broker.client()
    publisher.connect("publisher")
    publisher.publish("$denied/x", b"no", qos=1)  # acknowledged, dropped
    publisher.publish("$hub/x", b"yes", qos=1)
    publisher.ping()  # the connection is kept
    assert [(m.topic, m.payload) for m in exact.barrier()] == [("$hub/x", b"yes")]
    assert [m.topic for m in wild.barrier() if m.topic.startswith("$")] == []


def test_puback_arrives_for_a_qos1_publish_with_nobody_subscribed(start_hub: StartBroker) -> None:
    broker = start_hub()
    publisher = broker.client()
    publisher.connect("publisher")
    publisher.send(publish_packet("nobody/here", b"x", qos=1, packet_id=77))
    assert publisher.expect(PUBACK).body == b"\x00\x4d"


def test_resumed_session_is_checked_against_the_new_login(start_hub: StartBroker) -> None:
    broker = start_hub(
        extra_plugins={
            "tests.broker.plugins.ReadersByPrefix": {"readers": {"limited": ["pub/", "barrier/"]}}
        }
    )
    admin = broker.client()
    admin.connect("shared", clean=False, username="admin")
    admin.subscribe(("#", 0))  # granted whole for admin: no per-message check
    admin.disconnect()
    assert broker.wait_disconnected("shared")

    limited = broker.client()
    assert limited.connect("shared", clean=False, username="limited").session_present
    publisher = broker.client()
    publisher.connect("publisher")
    publisher.publish("secret/x", b"s", qos=1)
    publisher.publish("pub/x", b"p", qos=1)
    assert [m.topic for m in limited.barrier()] == ["pub/x"]


def test_client_that_never_acknowledges_is_disconnected(start_hub: StartBroker) -> None:
    broker = start_hub(max_queued_messages=5, ack_timeout=0.5)
    watcher = broker.client()
    watcher.connect("watcher")
    watcher.subscribe(("will/#", 0))
    mute = broker.client()
    mute.connect("mute", will=Will("will/mute"), keepalive=0)
    mute.subscribe(("m/#", 1))
    publisher = broker.client()
    publisher.connect("publisher")
    for n in range(5):  # the bound: the next ones are dropped while it might catch up
        publisher.publish(f"m/{n}", b"x", qos=1)
    publisher.barrier()
    assert broker.session_state("mute") == "connected"
    time.sleep(0.6)  # no acknowledgement for longer than ack_timeout
    publisher.publish("m/late", b"x", qos=1)
    assert watcher.receive().topic == "will/mute"
    assert broker.wait_disconnected("mute")


def test_connect_with_a_wildcard_will_topic_is_refused(
    kind: str, start_broker: StartBroker
) -> None:
    broker = start_broker()
    client = broker.client()
    # a will topic is a topic name [MQTT-3.1.3-10, MQTT-4.7.1-1]: no CONNACK, closed
    client.send(connect_packet("wild", will=Will("will/#")))
    assert client.read_packet(timeout=2.0) is None
