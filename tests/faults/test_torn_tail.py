"""A torn write at the end of the journal: the hub starts, drops only the torn tail, logs it,
and serves. Damage before the end (which would take intact transactions with it) stops it.

Each command below is sent alone and answered before the next, so each is one SQLite
transaction (its journal entry and its remembered reply, a page or two): tearing the last
frame of the WAL tears exactly the last command.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from hub.state.store import Store
from tests.faults.hubs import RestartableHub, ensure_user
from tests.faults.invariants import assert_invariants, read_journal, retained_state
from tests.faults.ledger import LEDGER, Category
from tests.faults.wal import Tear, current_frames, damage_frame, tear_last_frame, wal_of
from tests.support.cli import REPO
from tests.support.mqtt import TestClient

RENAMES = 20


def _play(hub: RestartableHub) -> dict[int, str]:
    """Two players join, then alice renames herself RENAMES times; version -> request id."""
    acked: dict[int, str] = {}
    data_dir, port = hub.address.data_dir, hub.address.mqtt_port

    def book(reply: dict[str, Any]) -> None:
        assert reply["ok"] is True, reply
        acked[reply["version"]] = reply["request_id"]

    with (
        TestClient(port, "alice", password=ensure_user(data_dir, "alice")) as alice,
        TestClient(port, "bob", password=ensure_user(data_dir, "bob")) as bob,
    ):
        book(alice.send({"type": "join", "name": "Alice", "request_id": "join-a"}))
        book(bob.send({"type": "join", "name": "Bob", "request_id": "join-b"}))
        for i in range(RENAMES):
            book(alice.send({"type": "rename", "name": f"Alice {i}", "request_id": f"r{i}"}))
    return acked


@pytest.mark.timeout(60)
@pytest.mark.parametrize("tear", list(Tear))
def test_a_torn_last_record_is_dropped_and_logged_and_the_hub_serves(
    tmp_path: Path, tear: Tear
) -> None:
    data_dir = tmp_path / "var"
    with RestartableHub(data_dir) as hub:
        hub.start()
        acked = _play(hub)
        hub.kill()
        before = read_journal(data_dir)
        assert before.versions == sorted(acked)
        tear_last_frame(wal_of(data_dir / Store.FILENAME), tear)
        LEDGER.add(Category.TORN_TAIL, faults=1)

        hub.start()
        log = hub.log_text()
        assert "ends in a torn write: dropping" in log
        # the last command's transaction: its journal entry and its remembered reply
        torn_frames = re.search(r"\((\d+) WAL frames\) after the last complete transaction", log)
        assert torn_frames is not None, log
        assert 1 <= int(torn_frames[1]) <= 3, torn_frames[0]
        after = read_journal(data_dir)
        torn = before.versions[-1]
        assert after.versions == before.versions[:-1], "more than the torn tail was dropped"
        kept = {version: rid for version, rid in acked.items() if version != torn}
        assert_invariants(data_dir, kept, retained=retained_state(hub.address))
        with TestClient(
            hub.address.mqtt_port, "alice", password=ensure_user(data_dir, "alice")
        ) as alice:
            reply = alice.send({"type": "rename", "name": "Alice again"})
        assert reply == {"ok": True, "version": torn, "request_id": reply["request_id"]}
    LEDGER.add(Category.TORN_TAIL, acked=len(kept))


@pytest.mark.timeout(60)
def test_damage_before_the_end_of_the_journal_keeps_the_hub_from_starting(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "var"
    with RestartableHub(data_dir) as hub:
        hub.start()
        _play(hub)
        hub.kill()
    wal = wal_of(data_dir / Store.FILENAME)
    frames = current_frames(wal)
    damage_frame(wal, frames[len(frames) // 2])
    damaged = wal.read_bytes()
    LEDGER.add(Category.TORN_TAIL, faults=1)

    serve = [sys.executable, "-m", "hub", "serve", "--data-dir", str(data_dir)]
    ports = ["--bind", "127.0.0.1", "--mqtt-port", "0", "--http-port", "0"]
    done = subprocess.run(
        [*serve, *ports], cwd=REPO, capture_output=True, text=True, timeout=30, check=False
    )
    assert done.returncode == 1, done.stderr
    assert "is damaged before its end" in done.stderr
    assert "intact transactions after the damage would be lost" in done.stderr
    assert wal.read_bytes() == damaged, "the refused start changed the journal"
