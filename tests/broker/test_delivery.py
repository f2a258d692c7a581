"""Delivered QoS is min(publish QoS, subscription QoS) [MQTT-3.8.4-6]; one copy per client.

Stock amqtt delivers client messages at the subscription's QoS, forces the QoS given to
``internal_message_broadcast`` and of wills on every subscriber, upgrades QoS 0 retained
messages, and sends one copy per matching filter.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from tests.broker.conftest import StartBroker
from tests.broker.wire import Will


async def _broadcast(broker: Any, *, topic: str, qos: int) -> None:
    """What the state service does for its own messages (EmbeddedTransport.publish)."""
    await broker.internal_message_broadcast(topic, b"x", qos)


def test_client_publish_delivered_at_min_qos(start_broker: StartBroker) -> None:
    broker = start_broker()
    subscriber = broker.client()
    subscriber.connect("subscriber")
    subscriber.subscribe(("qos/one/#", 1), ("qos/zero/#", 0))
    publisher = broker.client()
    publisher.connect("publisher")

    publisher.publish("qos/one/a", b"a", qos=0)
    publisher.publish("qos/zero/b", b"b", qos=1)
    publisher.publish("qos/one/c", b"c", qos=1)
    got = [(m.topic, m.qos) for m in subscriber.barrier()]
    assert got == [("qos/one/a", 0), ("qos/zero/b", 0), ("qos/one/c", 1)]


def test_internal_broadcast_qos_is_the_publish_qos(start_broker: StartBroker) -> None:
    broker = start_broker()
    subscriber = broker.client()
    subscriber.connect("subscriber")
    subscriber.subscribe(("svc/one/#", 1), ("svc/zero/#", 0))

    for topic, qos in (("svc/zero/a", 1), ("svc/one/b", 0), ("svc/one/c", 1)):
        broker.run(partial(_broadcast, topic=topic, qos=qos))
    got = [(m.topic, m.qos) for m in subscriber.barrier()]
    assert got == [("svc/zero/a", 0), ("svc/one/b", 0), ("svc/one/c", 1)]


def test_will_delivered_at_min_qos(start_broker: StartBroker) -> None:
    broker = start_broker()
    subscriber = broker.client()
    subscriber.connect("subscriber")
    subscriber.subscribe(("will/#", 0))
    dying = broker.client()
    dying.connect("dying", will=Will("will/dying", b"bye", qos=1))
    dying.close()  # without DISCONNECT: the will is due

    will = subscriber.receive()
    assert (will.topic, will.payload, will.qos) == ("will/dying", b"bye", 0)


def test_retained_delivered_at_min_qos(start_broker: StartBroker) -> None:
    broker = start_broker()
    publisher = broker.client()
    publisher.connect("publisher")
    publisher.publish("ret/zero", b"0", qos=0, retain=True)
    publisher.barrier()

    subscriber = broker.client()
    subscriber.connect("subscriber")
    subscriber.subscribe(("ret/#", 1))
    got = [(m.topic, m.qos, m.retain) for m in subscriber.barrier()]
    assert got == [("ret/zero", 0, True)]


def test_overlapping_subscriptions_get_one_copy(start_broker: StartBroker) -> None:
    broker = start_broker()
    subscriber = broker.client()
    subscriber.connect("subscriber")
    subscriber.subscribe(("o/#", 0), ("o/+", 1))
    publisher = broker.client()
    publisher.connect("publisher")

    publisher.publish("o/x", b"x", qos=1)
    # one copy, at the highest QoS of the matching subscriptions [MQTT-3.3.5-1]
    assert [(m.topic, m.qos) for m in subscriber.barrier()] == [("o/x", 1)]
