"""The invariants can fail: a stored snapshot that is not the journal replayed is caught."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from hub.state.store import Store
from tests.faults.hubs import RestartableHub, ensure_user
from tests.faults.invariants import read_journal
from tests.support.mqtt import TestClient


@pytest.mark.timeout(60)
def test_a_stored_snapshot_that_is_not_the_journal_replayed_is_caught(tmp_path: Path) -> None:
    data_dir = tmp_path / "var"
    with RestartableHub(data_dir) as hub:
        hub.start()
        password = ensure_user(data_dir, "alice")
        with TestClient(hub.address.mqtt_port, "alice", password=password) as alice:
            assert alice.send({"type": "join", "name": "Alice"})["ok"]
        assert hub.stop() == 0  # a clean stop stores a snapshot of version 1
    journal = read_journal(data_dir)
    assert journal.snapshots_checked == 1
    db = sqlite3.connect(data_dir / Store.FILENAME)
    with db:
        tampered = db.execute(
            "UPDATE snapshots SET state = replace(state, '\"Alice\"', '\"Mallory\"') "
            "WHERE version = (SELECT max(version) FROM snapshots)"
        ).rowcount
    db.close()
    assert tampered == 1
    with pytest.raises(AssertionError, match="is not the journal replayed to it"):
        read_journal(data_dir)
