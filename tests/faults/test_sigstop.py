"""SIGSTOP the hub for 5 s in the middle of a turn storm, then SIGCONT: nothing is lost, and
the players and every other kind of client (``CLIENT_KINDS``) recover by themselves.

The players use a keep-alive of 2 s, so the stop outlasts it: their connections may be
dropped (by them or by the waking broker) and must come back without help."""

from __future__ import annotations

import signal
import time
from contextlib import ExitStack
from pathlib import Path

import pytest

from tests.faults.hubs import RestartableHub, ensure_user
from tests.faults.invariants import assert_invariants, retained_state
from tests.faults.ledger import LEDGER, Category
from tests.faults.storm import AckBook, TurnStorm
from tests.faults.survivors import CLIENT_KINDS, Survivor
from tests.support.mqtt import TestClient

STOPPED_FOR = 5.0
SEED = 5


@pytest.mark.timeout(90)
def test_sigstop_for_5_s_loses_nothing_and_clients_recover(tmp_path: Path) -> None:
    book = AckBook()
    data_dir = tmp_path / "var"
    with ExitStack() as stack:
        hub = stack.enter_context(RestartableHub(data_dir, "--command-rate-limit", "0"))
        hub.start()
        address = hub.address
        clients = [
            stack.enter_context(
                TestClient(
                    address.mqtt_port, name, password=ensure_user(data_dir, name), keepalive=2
                )
            )
            for name in ("alice", "bob")
        ]
        alice, bob = clients
        assert alice.send({"type": "join", "name": "Alice"})["ok"]
        assert bob.send({"type": "join", "name": "Bob"})["ok"]
        assert alice.send({"type": "start", "max_rounds": 99})["ok"]
        survivors: list[Survivor] = []
        for kind in CLIENT_KINDS:
            survivor = kind(address, tmp_path / f"client-{len(survivors)}")
            stack.callback(survivor.close)
            survivors.append(survivor)
        for survivor in survivors:
            survivor.settle(timeout=20)
        storm = stack.enter_context(TurnStorm(clients, book, SEED))

        storm.resume()
        stack.callback(hub.process_signal, signal.SIGCONT)  # never leave it stopped
        book.wait_for_acks(200)  # the storm is under way
        hub.process_signal(signal.SIGSTOP)
        time.sleep(STOPPED_FOR)  # the fault itself: the hub does nothing for 5 s
        hub.process_signal(signal.SIGCONT)
        LEDGER.add(Category.SIGSTOP, faults=1)
        book.wait_for_acks(200)  # and goes on afterwards

        storm.pause()
        storm.barrier()
        for survivor in survivors:
            survivor.settle(timeout=20)
        retained = retained_state(address)
        assert_invariants(data_dir, book.snapshot(), retained=retained)
        assert retained["epoch"] == 1, "the hub restarted"
        assert [p["client_id"] for p in retained["players"]] == ["alice", "bob"]
        assert hub.running

        # a will of a connection the stop broke must not outlive the client's comeback
        for survivor in survivors:
            survivor.settle(timeout=10)
    LEDGER.add(Category.SIGSTOP, acked=len(book.acked), rejected=sum(book.rejected.values()))
