"""Disk full under a running hub: commands are refused with ``storage_unavailable``, nothing
is acknowledged that is not stored, nothing refused is stored, and the hub recovers when
space returns (while running, and after a kill -9 on the full disk).

Runs once per way of filling the disk this machine allows (``tests.faults.disk``).
"""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.faults.disk import DISKS, Disk
from tests.faults.hubs import RestartableHub, ensure_user
from tests.faults.invariants import assert_invariants, retained_state
from tests.faults.ledger import LEDGER, Category
from tests.support.cli import REPO
from tests.support.mqtt import TestClient

REFUSALS = 8
"""Refused commands to see each time the disk is full."""


class Commands:
    """The commands of one test: version -> request id of the accepted, and the refused."""

    def __init__(self, http_port: int) -> None:
        self.acked: dict[int, str] = {}
        self.refused: set[str] = set()
        self._next = 0
        self._snapshot_url = f"http://127.0.0.1:{http_port}/api/games/main"

    def snapshot(self) -> Any:
        """The hub's current snapshot of the game (HTTP: no retained message involved)."""
        with urllib.request.urlopen(self._snapshot_url, timeout=10) as response:
            return json.loads(response.read())

    def rename(self, client: TestClient) -> dict[str, Any]:
        self._next += 1
        command = {"type": "rename", "name": f"Alice {self._next}", "request_id": f"r{self._next}"}
        before = self.snapshot()
        reply: dict[str, Any] = client.send(command)
        if reply["ok"]:
            self.acked[reply["version"]] = reply["request_id"]
        else:
            assert reply["error"]["code"] == "storage_unavailable", reply
            self.refused.add(reply["request_id"])
            assert self.snapshot() == before, "a command refused for lack of space changed the game"
        return reply

    def until_refused(self, client: TestClient) -> None:
        """Send until REFUSALS commands in a row were refused (a few may still fit)."""
        in_a_row = 0
        for _ in range(400):
            in_a_row = 0 if self.rename(client)["ok"] else in_a_row + 1
            if in_a_row == REFUSALS:
                return
        msg = f"the full disk refused only {len(self.refused)} of 400 commands"
        raise AssertionError(msg)


def _start_on_full_disk(data_dir: Path) -> subprocess.CompletedProcess[str]:
    serve = [sys.executable, "-m", "hub", "serve", "--data-dir", str(data_dir)]
    ports = ["--bind", "127.0.0.1", "--mqtt-port", "0", "--http-port", "0"]
    return subprocess.run(
        [*serve, *ports], cwd=REPO, capture_output=True, text=True, timeout=30, check=False
    )


@pytest.mark.timeout(90)
@pytest.mark.parametrize("kind", list(DISKS))
def test_disk_full_refuses_commands_and_recovers(tmp_path: Path, kind: str) -> None:
    with DISKS[kind](tmp_path) as disk:
        why_not = disk.available()
        if why_not is not None:
            pytest.skip(f"{disk.name}: {why_not}")
        LEDGER.note(Category.DISK_FULL, disk.name)
        _run(disk, tmp_path / "hub.log")


def _run(disk: Disk, log: Path) -> None:
    data_dir = disk.data_dir
    with RestartableHub(data_dir, "--command-rate-limit", "0", log=log) as hub:
        hub.start()
        book = Commands(hub.address.http_port)
        port = hub.address.mqtt_port
        with TestClient(port, "alice", password=ensure_user(data_dir, "alice")) as alice:
            assert alice.send({"type": "join", "name": "Alice"})["ok"]
            for _ in range(5):
                assert book.rename(alice)["ok"]

            # full while running, then space again: it takes commands again
            disk.fill(hub.pid)
            book.until_refused(alice)
            assert_invariants(data_dir, book.acked, retained=retained_state(hub.address))
            disk.free(hub.pid)
            for _ in range(5):
                assert book.rename(alice)["ok"], "the hub did not recover when space returned"

            # full again, and killed while full
            disk.fill(hub.pid)
            book.until_refused(alice)
            hub.kill()
        LEDGER.add(Category.DISK_FULL, faults=2)
        if disk.stays_full_for_new_processes:
            refused_start = _start_on_full_disk(data_dir)
            assert refused_start.returncode == 1, refused_start.stderr[-2000:]
            assert "cannot write the journal" in refused_start.stderr
        disk.free(hub.pid)

        hub.start()
        journal = assert_invariants(data_dir, book.acked, retained=retained_state(hub.address))
        stored = set(journal.request_ids.values())
        assert not book.refused & stored, "a command refused for lack of space was stored"
        with TestClient(port, "alice", password=ensure_user(data_dir, "alice")) as alice:
            assert book.rename(alice)["ok"]
        assert hub.stop() == 0
    LEDGER.add(Category.DISK_FULL, acked=len(book.acked), rejected=len(book.refused))
