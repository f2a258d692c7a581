"""kill -9 of an external broker (Debian's Mosquitto, ``hub serve --broker``) and of the hub
beside it, in turn, during a turn storm.

Mosquitto keeps nothing (no persistence): after it comes back, the state service's link
(``hub.link.MqttTransport``) must reconnect by itself, subscribe again and republish the
retained status and state. After a kill of the hub, Mosquitto publishes its last will
(status ``offline``) until the restarted hub says ``online``. Either way the players
reconnect by themselves and the invariants hold.
"""

from __future__ import annotations

import random
import time
from contextlib import ExitStack
from pathlib import Path

import pytest

from tests.faults.hubs import HubAddress, RestartableHub, ensure_user, operator_client
from tests.faults.invariants import assert_invariants, retained_state
from tests.faults.ledger import LEDGER, Category
from tests.faults.storm import AckBook, TurnStorm
from tests.support.mosquitto import Mosquitto
from tests.support.mqtt import TOPICS, TestClient

KILLS = 6
SEED = 1883
RECOVERY_DEADLINE = 30.0
"""Seconds from the restart until both players must have a command answered again (about
2 s are needed: the players reconnect after 1 s, the hub's link after at most ~1 s of
backoff); generous, for a loaded machine. The slowest recovery is printed, not asserted."""


def _status(address: HubAddress) -> dict[str, object]:
    with operator_client(address, "status-probe") as probe:
        probe.subscribe(TOPICS.status)
        status: dict[str, object] = probe.wait_for(
            lambda m: m.topic == TOPICS.status and m.json()["state"] == "online", 20
        ).json()
        return status


@pytest.mark.timeout(120)
def test_kill_9_of_mosquitto_and_of_the_hub_beside_it(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    book = AckBook()
    data_dir = tmp_path / "var"
    data_dir.mkdir()
    passwords = {name: ensure_user(data_dir, name) for name in ("alice", "bob")}
    with ExitStack() as stack:
        broker = stack.enter_context(Mosquitto(data_dir, tmp_path / "mosquitto"))
        hub = stack.enter_context(
            RestartableHub(data_dir, "--broker", broker.url, "--command-rate-limit", "0")
        )
        hub.start()
        operator = (data_dir / "operator.txt").read_text().strip()
        broker.reload("operator", operator)
        address = HubAddress(broker.port, hub.address.http_port, data_dir)
        clients = [
            stack.enter_context(TestClient(broker.port, name, password=password))
            for name, password in passwords.items()
        ]
        alice, bob = clients
        assert alice.send({"type": "join", "name": "Alice"}, timeout=20)["ok"]
        assert bob.send({"type": "join", "name": "Bob"})["ok"]
        assert alice.send({"type": "start", "max_rounds": 99})["ok"]
        storm = stack.enter_context(TurnStorm(clients, book, SEED))

        slowest = 0.0
        for kill in range(KILLS):
            storm.resume()
            time.sleep(rng.uniform(0.05, 0.6))  # the random moment of the storm to die in
            if kill % 2 == 0:
                assert broker.proc is not None
                broker.proc.kill()
                broker.proc.wait(10)
                broker.__enter__()  # again, on the same port, with nothing retained
            else:
                hub.kill()
                hub.start()
            restarted = time.monotonic()
            LEDGER.add(Category.KILL_9, faults=1)
            storm.pause()
            storm.barrier(RECOVERY_DEADLINE)
            slowest = max(slowest, time.monotonic() - restarted)
            status = _status(address)
            assert status["epoch"] == hub.starts, status
            retained = retained_state(address)
            assert_invariants(data_dir, book.snapshot(), retained=retained)
            assert [p["client_id"] for p in retained["players"]] == ["alice", "bob"]
        LEDGER.note(Category.KILL_9, f"{KILLS // 2} of Mosquitto under hub serve --broker")
        LEDGER.note(Category.KILL_9, f"slowest recovery after a restart {slowest:.1f} s")
    LEDGER.add(Category.KILL_9, acked=len(book.acked), rejected=sum(book.rejected.values()))
