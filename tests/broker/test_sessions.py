"""Persistent sessions (clean session 0): resumed with their queued messages, then expired.

Stock amqtt replays queued messages with RETAIN 1 [MQTT-3.3.1-9], at the subscription's QoS,
plus every retained message again, and keeps disconnected sessions forever by default.
"""

from __future__ import annotations

from tests.broker.conftest import StartBroker


def test_persistent_session_resumes_with_its_queued_messages(start_broker: StartBroker) -> None:
    broker = start_broker()
    publisher = broker.client()
    publisher.connect("publisher")
    publisher.publish("p/retained", b"r", qos=1, retain=True)
    publisher.barrier()

    first = broker.client()
    assert not first.connect("persistent", clean=False).session_present
    first.subscribe(("p/#", 1))
    assert [(m.topic, m.retain) for m in first.barrier()] == [("p/retained", True)]
    first.disconnect()
    assert broker.wait_disconnected("persistent")

    for n in (1, 2, 3):
        publisher.publish(f"p/{n}", f"{n}".encode(), qos=1)
    publisher.publish("p/zero", b"0", qos=0)  # delivered at QoS 0: nothing to keep offline
    publisher.barrier()  # everything above is routed

    again = broker.client()
    assert again.connect("persistent", clean=False).session_present
    got = [(m.topic, m.payload, m.qos, m.retain) for m in again.barrier()]
    assert got == [
        ("p/1", b"1", 1, False),
        ("p/2", b"2", 1, False),
        ("p/3", b"3", 1, False),
    ]


def test_persistent_session_expires(start_broker: StartBroker) -> None:
    broker = start_broker(session_expiry=1)
    first = broker.client()
    first.connect("expiring", clean=False)
    first.subscribe(("e/#", 1))
    first.disconnect()

    assert broker.wait_session_gone("expiring", timeout=5.0)
    publisher = broker.client()
    publisher.connect("publisher")
    publisher.publish("e/1", b"late", qos=1)
    publisher.barrier()
    again = broker.client()
    assert not again.connect("expiring", clean=False).session_present
    assert again.barrier() == []


def test_offline_queue_is_bounded(start_broker: StartBroker) -> None:
    broker = start_broker(max_queued_messages=3)
    first = broker.client()
    first.connect("offline", clean=False)
    first.subscribe(("q/#", 1))
    first.disconnect()
    assert broker.wait_disconnected("offline")

    publisher = broker.client()
    publisher.connect("publisher")
    for n in range(6):
        publisher.publish(f"q/{n}", f"{n}".encode(), qos=1)
    publisher.barrier()

    again = broker.client()
    assert again.connect("offline", clean=False).session_present
    assert [m.payload for m in again.barrier()] == [b"0", b"1", b"2"]
