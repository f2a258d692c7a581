"""Retained messages go only to a client's own new subscriptions, within its ACL.

Stock amqtt pushes, on every CONNECT, the retained messages matching the subscriptions of
*all* clients (broker.py ``_handle_client_session``), and skips the RECEIVE ACL for them.
"""

from __future__ import annotations

from tests.broker.conftest import StartBroker
from tests.broker.harness import RunningBroker


def _retain(broker: RunningBroker, topic: str, payload: bytes, *, qos: int = 0) -> None:
    publisher = broker.client()
    publisher.connect(f"retainer-{topic}")
    publisher.publish(topic, payload, qos=qos, retain=True)
    publisher.barrier()  # stored: the broker handles a client's messages in order
    publisher.disconnect()


def test_client_without_subscriptions_gets_no_retained_message(start_broker: StartBroker) -> None:
    broker = start_broker()
    holder = broker.client()
    holder.connect("holder")
    holder.subscribe(("#", 0))
    _retain(broker, "secret/x", b"s")

    newcomer = broker.client()
    newcomer.connect("newcomer")
    assert newcomer.barrier() == []


def test_new_subscription_gets_each_retained_message_once(start_broker: StartBroker) -> None:
    broker = start_broker()
    holder = broker.client()
    holder.connect("holder")
    holder.subscribe(("#", 0))
    _retain(broker, "state/a", b"1")

    subscriber = broker.client()
    subscriber.connect("subscriber")
    subscriber.subscribe(("state/a", 1))
    got = subscriber.barrier()
    assert [(m.topic, m.payload, m.retain) for m in got] == [("state/a", b"1", True)]


def test_retained_messages_respect_the_receive_acl(start_broker: StartBroker) -> None:
    broker = start_broker(
        extra_plugins={"tests.broker.plugins.DenyTopics": {"receive": ["private/x"]}}
    )
    _retain(broker, "private/x", b"p")
    _retain(broker, "public/x", b"q")

    subscriber = broker.client()
    subscriber.connect("subscriber")
    subscriber.subscribe(("#", 0))
    assert [m.topic for m in subscriber.barrier()] == ["public/x"]
