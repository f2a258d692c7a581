"""Resent commands are applied at most once per (client, request_id), through the real hub.

A resend (the same request id from the same client) gets the first reply again, accepted
or rejected, and changes nothing; across a kill -9 too; other clients' ids are their own;
the window holds the last DEDUPE_WINDOW ids per client (docs/protocol.md).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from hub.state.journal import DEDUPE_WINDOW
from tests.integration.conftest import ClientFactory
from tests.support.cli import run_cli
from tests.support.hub import HubProcess
from tests.support.mqtt import TOPICS, Message, TestClient


def _history(data_dir: Path) -> list[dict[str, Any]]:
    done = run_cli("history", "--game", "main", "--json", "--data-dir", str(data_dir))
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]


def _replies(client: TestClient, request_id: str, count: int) -> list[Any]:
    """Wait until ``count`` replies to ``request_id`` arrived; return them all."""
    topic = TOPICS.client_reply(client.client_id)

    def mine(m: Message) -> bool:
        return m.topic == topic and m.json().get("request_id") == request_id

    client.wait_for(lambda _m: sum(map(mine, client.messages)) >= count, timeout=20)
    return [m.json() for m in client.messages if mine(m)]


@pytest.mark.parametrize("times", [2, 5])
def test_a_resent_command_is_applied_once(
    hub: HubProcess, connect: ClientFactory, times: int
) -> None:
    alice = connect("alice")
    assert alice.send({"type": "join", "name": "Alice", "request_id": "j1"})["version"] == 1
    rename = {"type": "rename", "name": "Alicia", "request_id": "r1"}
    first = alice.send(rename)
    assert first == {"request_id": "r1", "ok": True, "version": 2}
    for _ in range(times - 1):  # one at a time, each waiting for its reply
        assert alice.send(rename) == first
    for _ in range(times):  # pipelined: some land in one batch with each other
        alice.publish(TOPICS.game_command("main", "alice"), rename)
    assert _replies(alice, "r1", 2 * times) == [first] * (2 * times)
    # a different name under the same id is still the same command: not applied
    assert alice.send({**rename, "name": "Other"}) == first
    assert alice.send({"type": "rename", "name": "Ally", "request_id": "r2"})["version"] == 3
    assert alice.state(min_version=3)["version"] == 3
    assert [e["type"] for e in _history(hub.data_dir)] == ["join", "rename", "rename"]
    assert [e.get("name") for e in _history(hub.data_dir)] == ["Alice", "Alicia", "Ally"]


def test_a_resent_rejection_gets_the_same_rejection(
    hub: HubProcess, connect: ClientFactory
) -> None:
    alice, bob = connect("alice"), connect("bob")
    assert alice.send({"type": "join", "name": "Alice"})["ok"]
    early = {"type": "end_turn", "points": 5, "request_id": "e1"}
    first = alice.send(early)
    assert first["ok"] is False
    assert first["error"]["code"] == "wrong_status"
    assert alice.send(early) == first
    assert bob.send({"type": "join", "name": "Bob"})["ok"]
    assert alice.send({"type": "start", "max_rounds": 2})["version"] == 3
    # end_turn would be accepted now; the resend still gets its original rejection
    assert alice.send(early) == first
    state = alice.state(min_version=3)
    assert state["version"] == 3
    assert state["players"][0]["score"] == 0
    assert alice.send({"type": "end_turn", "points": 5, "request_id": "e2"})["version"] == 4


def test_clients_request_ids_are_their_own(hub: HubProcess, connect: ClientFactory) -> None:
    alice, bob = connect("alice"), connect("bob")
    assert alice.send({"type": "join", "name": "Alice", "request_id": "same"}) == {
        "request_id": "same",
        "ok": True,
        "version": 1,
    }
    assert bob.send({"type": "join", "name": "Bob", "request_id": "same"}) == {
        "request_id": "same",
        "ok": True,
        "version": 2,
    }
    assert alice.send({"type": "join", "name": "Alice", "request_id": "same"})["version"] == 1
    seats = [p["client_id"] for p in alice.state(min_version=2)["players"]]
    assert seats == ["alice", "bob"]


def test_commands_without_request_id_are_not_deduped(
    hub: HubProcess, connect: ClientFactory
) -> None:
    alice = connect("alice")
    assert alice.send({"type": "join", "name": "Alice"})["ok"]
    rename = json.dumps({"type": "rename", "name": "Alicia"}).encode()  # no request_id
    assert alice.send(rename) == {"request_id": None, "ok": True, "version": 2}
    assert alice.send(rename) == {"request_id": None, "ok": True, "version": 3}


def test_resends_survive_kill_9(hub: HubProcess) -> None:
    """Killed with SIGKILL and started again on the same journal (and broker): the
    replies it gave, accepted and rejected, are still the replies to their resends."""
    early = {"type": "end_turn", "points": 9, "request_id": "e1"}
    with hub.client("alice") as alice, hub.client("bob") as bob:
        assert alice.send({"type": "join", "name": "Alice", "request_id": "j1"})["ok"]
        accepted = alice.send({"type": "rename", "name": "Alicia", "request_id": "r1"})
        assert accepted["version"] == 2
        rejected = alice.send(early)  # remembered without an fsync: kill -9 keeps it
        assert rejected["error"]["code"] == "wrong_status"
        assert bob.send({"type": "join", "name": "Bob", "request_id": "j1"})["version"] == 3
    hub.kill()
    again = HubProcess(hub.data_dir, broker=hub.broker)
    with again, again.client("alice") as alice:
        alice.state(min_version=3)
        alice.subscribe(TOPICS.status)
        alice.wait_for(lambda m: m.topic == TOPICS.status and m.json()["epoch"] == 2)
        assert alice.send({"type": "rename", "name": "Alicia", "request_id": "r1"}) == accepted
        assert alice.send({"type": "start", "request_id": "s1"})["version"] == 4
        assert alice.send(early) == rejected  # valid now, but already answered
        assert alice.state(min_version=4)["version"] == 4
        assert [e["type"] for e in _history(hub.data_dir)] == ["join", "rename", "join", "start"]


def test_old_request_ids_fall_out_of_the_window(tmp_path: Path) -> None:
    with (
        HubProcess(tmp_path / "var", "--command-rate-limit", "0") as hub,
        hub.client("alice") as alice,
    ):
        join = {"type": "join", "name": "Alice", "request_id": "w0"}
        assert alice.send(join)["version"] == 1
        renames = [
            {"type": "rename", "name": f"A{n}", "request_id": f"w{n}"}
            for n in range(1, DEDUPE_WINDOW + 1)
        ]
        replies = [alice.send(rename) for rename in renames]
        assert [r["version"] for r in replies] == list(range(2, DEDUPE_WINDOW + 2))
        # w1..w64 are the last DEDUPE_WINDOW ids: remembered; w0 fell out
        assert alice.send(renames[0]) == replies[0]
        again = alice.send(join)  # judged afresh: alice is seated already
        assert again["ok"] is False
        assert again["error"]["code"] == "already_seated"
        # remembering w0 again pushed w1 out: it is a new command now
        assert alice.send(renames[0])["version"] == DEDUPE_WINDOW + 2
