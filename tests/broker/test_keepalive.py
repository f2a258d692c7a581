"""Keep-alive is enforced: silent clients are dropped after 1.5 x keep-alive, with their will.

Stock amqtt never drops them (Yakifo/amqtt#308).
"""

from __future__ import annotations

import time

from tests.broker.conftest import StartBroker
from tests.broker.wire import Will


def test_silent_client_is_dropped_and_its_will_published(start_broker: StartBroker) -> None:
    broker = start_broker()
    watcher = broker.client()
    watcher.connect("watcher")
    watcher.subscribe(("will/#", 0))
    silent = broker.client()
    assert silent.connect("silent", keepalive=1, will=Will("will/silent")).return_code == 0
    connected_at = time.monotonic()

    # Dropped [MQTT-3.1.2-24], waited on with room for a loaded machine; never before
    # 1.5 x keep-alive (a lower bound load cannot break; 0.1 s for the CONNACK's trip).
    assert silent.wait_closed(timeout=1.5 + 10.0)
    silent_for = time.monotonic() - connected_at
    assert silent_for >= 1.4
    will = watcher.receive()
    assert (will.topic, will.payload) == ("will/silent", b"gone")


def test_client_that_keeps_talking_is_not_dropped(start_hub: StartBroker) -> None:
    broker = start_hub()
    watcher = broker.client()
    watcher.connect("watcher")
    watcher.subscribe(("will/#", 0))
    talker = broker.client()
    talker.connect("talker", keepalive=1, will=Will("will/talker"))

    # 3.5 s is more than twice the 1.5 s limit; any packet counts, pings or publishes
    until = time.monotonic() + 3.5
    for beat in range(100):
        if time.monotonic() > until:
            break
        time.sleep(0.5)  # the client's own pace, not a wait for the broker
        if beat % 2:
            talker.ping()
        else:
            talker.publish("talk/x", b"hi")

    assert broker.session_state("talker") == "connected"
    talker.ping()
    assert watcher.barrier() == []  # no will
