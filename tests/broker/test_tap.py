"""The in-process tap sees exactly what the broker routes after its ACL check, wills included.

On stock amqtt the obvious tap is the ``broker_message_received`` plugin event, which fires
before the ACL check (denied publishes included) and never for wills.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tests.broker.conftest import StartBroker
from tests.broker.harness import Kind, RunningBroker
from tests.broker.wire import Will

DENIED = "cmd/denied"
ACL = {"tests.broker.plugins.DenyTopics": {"publish": [DENIED]}}
RECORDER = "tests.broker.plugins.ReceivedRecorder"


def _start_tapped(
    kind: Kind, start_broker: StartBroker
) -> tuple[RunningBroker, Callable[[], list[str]]]:
    """A broker with the ACL, and a function returning the "cmd/" topics tapped so far."""
    if kind == "stock":
        broker = start_broker(extra_plugins={**ACL, RECORDER: {}})

        def tapped_stock(b: Any) -> list[str]:
            return list(b.plugins_manager.get_plugin("ReceivedRecorder").topics)

        return broker, lambda: [t for t in broker.call(tapped_stock) if t.startswith("cmd/")]

    broker = start_broker(extra_plugins=ACL)
    seen: list[str] = []

    def install(b: Any) -> None:
        b.message_tap = lambda topic, payload, session: seen.append(topic)

    broker.call(install)
    return broker, lambda: [t for t in broker.call(lambda _: list(seen)) if t.startswith("cmd/")]


def test_tap_sees_only_what_the_acl_allowed(kind: Kind, start_broker: StartBroker) -> None:
    broker, tapped = _start_tapped(kind, start_broker)
    watcher = broker.client()
    watcher.connect("watcher")
    watcher.subscribe(("cmd/#", 0))
    sender = broker.client()
    sender.connect("sender", will=Will(DENIED, b"from the will"))

    sender.publish(DENIED, b"no", qos=1)
    sender.publish("cmd/allowed", b"yes", qos=1)
    sender.close()  # without DISCONNECT: its will, on the denied topic, is due
    assert broker.wait_disconnected("sender")

    delivered = [m.topic for m in watcher.barrier()]  # all routed by now
    assert tapped() == ["cmd/allowed"]
    assert delivered == ["cmd/allowed"]


def test_tap_sees_wills(kind: Kind, start_broker: StartBroker) -> None:
    broker, tapped = _start_tapped(kind, start_broker)
    watcher = broker.client()
    watcher.connect("watcher")
    dying = broker.client()
    dying.connect("dying", will=Will("cmd/will", b"bye"))
    dying.close()
    assert broker.wait_disconnected("dying")

    watcher.barrier()  # the will was routed before this
    assert tapped() == ["cmd/will"]
