"""Resource limits: CONNECT timeout, packet size, outgoing backlog, connection count.

Stock amqtt has none of them; its ``max_connections`` makes extra clients wait, silently.
"""

from __future__ import annotations

import time

from tests.broker.conftest import StartBroker
from tests.broker.harness import RunningBroker
from tests.broker.wire import Publish, RawClient, Will, publish_packet


def test_connection_without_connect_is_closed(start_broker: StartBroker) -> None:
    broker = start_broker(connect_timeout=1.0)
    opened = time.monotonic()
    silent = broker.client()
    partial = broker.client()
    partial.send(b"\x10\x20\x00")  # the start of a CONNECT that never completes

    assert silent.wait_closed(timeout=10.0)
    assert partial.wait_closed(timeout=10.0)
    assert time.monotonic() - opened >= 0.9  # not before the 1 s CONNECT timeout


def test_oversized_packet_closes_the_connection_before_its_body(start_broker: StartBroker) -> None:
    broker = start_broker(max_packet_size=1024)
    watcher = broker.client()
    watcher.connect("watcher")
    watcher.subscribe(("big/#", 0))
    sender = broker.client()
    sender.connect("sender")
    sender.publish("big/ok", bytes(1000))  # within the limit
    assert watcher.receive().payload == bytes(1000)

    # announce a 1 MiB PUBLISH, send only its first bytes: refused on the announced length
    sender.send(publish_packet("big/huge", bytes(1 << 20))[:64])
    assert sender.wait_closed(timeout=2.0)


def test_client_that_stops_reading_is_disconnected(start_broker: StartBroker) -> None:
    broker = start_broker(max_queued_messages=10)
    watcher = broker.client()
    watcher.connect("watcher")
    watcher.subscribe(("will/#", 0))
    stalled = broker.client(receive_buffer=4096)
    stalled.connect("stalled", will=Will("will/stalled"))
    stalled.subscribe(("flood/#", 0))
    publisher = broker.client()
    publisher.connect("publisher")

    will: Publish | None = None
    deadline = time.monotonic() + 3.0
    for n in range(2000):  # at most 32 MiB; the hub needs a small fraction of it
        publisher.publish("flood/x", bytes(16 * 1024))
        if n % 10 == 9:
            will = _poll(watcher)
            if will is not None or time.monotonic() > deadline:
                break
    if will is None:
        try:
            will = watcher.receive(timeout=15.0)
        except TimeoutError:
            msg = "the client that stopped reading was never dropped (no will)"
            raise AssertionError(msg) from None
    assert will.topic == "will/stalled"
    assert broker.session_state("stalled") != "connected"
    assert publisher.barrier() == []  # the broker still serves everyone else


def _poll(client: RawClient) -> Publish | None:
    try:
        return client.receive(timeout=0.01)
    except TimeoutError:
        return None


def test_connections_beyond_max_connections_are_refused(start_broker: StartBroker) -> None:
    broker = start_broker(max_connections=2)
    first = broker.client()
    assert first.connect("first").return_code == 0
    second = broker.client()
    assert second.connect("second").return_code == 0

    third = broker.client()
    try:
        answer = third.connect("third", timeout=10.0)
    except TimeoutError:
        msg = "no CONNACK for a connection past max_connections"
        raise AssertionError(msg) from None
    assert answer.return_code == 3  # server unavailable
    assert third.wait_closed(timeout=10.0)

    first.disconnect()  # frees a place
    assert _connect_eventually(broker, "fourth", timeout=15.0)


def _connect_eventually(broker: RunningBroker, client_id: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while broker.client().connect(client_id).return_code != 0:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True
