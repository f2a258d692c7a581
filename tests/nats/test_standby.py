"""Hot standby on a 3-node NATS cluster: two ``hub serve --broker`` instances, one active.

- kill -9 of the active service mid-storm, ``ROUNDS`` times, the killed one started again
  as the new standby (so the two alternate): each time the standby takes over (a new
  epoch, ``R/status`` online with its instance name) and the game goes on; the takeover
  time (kill -> the new active's status published) is printed.
- SIGSTOP of the active service beyond its lease, then SIGCONT: the standby took over
  meanwhile; the woken one publishes nothing (no status, no state of its epoch) and ends
  up a standby, which takes over in turn when the other dies.

After each fault: every command that got ``ok`` is in the replicated journal at its
version exactly once, versions are gapless, no request id was applied twice, no version
was acknowledged for two different commands, and the retained state is the journal's.
"""

from __future__ import annotations

import asyncio
import signal
import statistics
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from hub.nats.journal import cluster_journal
from hub.protocol.broker_url import parse_broker_url
from hub.state.journal import JournalEntry
from tests.faults.storm import AckBook, TurnStorm
from tests.nats.services import ServiceProcess
from tests.support.hub import cluster_password
from tests.support.mqtt import TOPICS, Message, TestClient
from tests.support.nats import NatsCluster, nats_server

pytestmark = pytest.mark.skipif(nats_server() is None, reason="nats-server is missing")

ROUNDS = 10
SEED = 20261206
TAKEOVER_DEADLINE_S = 60.0
"""How long the test waits for a takeover. The product's promise (at most 3 s) is a speed
figure: printed here (run with ``-s``) and in the closing notes, not asserted, since a
correctness test must also pass on a machine whose cores are busy with other work."""


@dataclass
class StrictBook(AckBook):
    """An AckBook that also notes a version acknowledged for two different commands."""

    conflicts: list[tuple[int, str, str]] = field(default_factory=list)

    def book(self, reply: dict[str, Any]) -> None:
        if reply.get("ok") is True:
            version, rid = int(reply["version"]), str(reply["request_id"])
            with self._lock:
                earlier = self.acked.get(version)
                if earlier is not None and earlier != rid:
                    self.conflicts.append((version, earlier, rid))
        super().book(reply)


def _history(cluster: NatsCluster) -> list[JournalEntry]:
    async def read() -> list[JournalEntry]:
        async with cluster_journal(parse_broker_url(cluster.url), read_only=True) as journal:
            return await journal.entries("main")

    return asyncio.run(asyncio.wait_for(read(), 60))


def _check(cluster: NatsCluster, book: StrictBook, watcher: TestClient) -> list[JournalEntry]:
    """The invariants (module docstring), with the game quiet (after a barrier)."""
    entries = _history(cluster)
    versions = [e.version for e in entries]
    assert versions == list(range(1, len(versions) + 1)), f"gaps: {versions[-20:]}"
    rids = [rid for e in entries if (rid := getattr(e.command, "request_id", None))]
    twice = {rid: n for rid, n in Counter(rids).items() if n > 1}
    assert twice == {}, f"commands applied more than once: {twice}"
    stored = {e.version: getattr(e.command, "request_id", None) for e in entries}
    acked = book.snapshot()
    lost = {v: rid for v, rid in acked.items() if stored.get(v) != rid}
    assert lost == {}, f"{len(lost)} acknowledged commands are not in the journal: {lost}"
    assert book.conflicts == [], f"versions acknowledged twice: {book.conflicts}"
    retained = watcher.state(min_version=versions[-1], timeout=30)
    assert retained["version"] == versions[-1]
    return entries


def _online(instance: str) -> Any:
    def is_online(m: Message) -> bool:
        if m.topic != TOPICS.status:
            return False
        status = m.json()
        return bool(status["state"] == "online" and status.get("instance") == instance)

    return is_online


def _answered(client: TestClient, command: dict[str, Any]) -> Any:
    """Send ``command`` until it is answered, as a client with a timeout does (the same
    request id each time)."""
    deadline = time.monotonic() + 60
    while True:
        try:
            return client.send(command, timeout=5)
        except TimeoutError:
            if time.monotonic() > deadline:
                raise


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[NatsCluster]:
    with NatsCluster(tmp_path / "nats", nodes=3) as nats:
        yield nats


class _Game:
    """Two instances a and b on one data directory (its users, the operator), two seated
    players storming on nodes 2 and 3, an operator watching status and state on node 3.
    ``keepalive``: the MQTT clients' (a test that kills NATS nodes wants it short)."""

    def __init__(
        self, stack: ExitStack, tmp_path: Path, cluster: NatsCluster, *, keepalive: int = 30
    ) -> None:
        data_dir = tmp_path / "var"
        data_dir.mkdir()
        passwords = {name: cluster_password(cluster.url, name) for name in ("alice", "bob")}
        args = ("--command-rate-limit", "0")
        self.services = {
            name: ServiceProcess(data_dir, cluster, name, *args) for name in ("a", "b")
        }
        for service in self.services.values():
            stack.callback(service.__exit__, None, None, None)
        self.services["a"].start().wait_line("tablehub ready")
        self.services["b"].start().wait_line("tablehub standby")
        self.operator = (data_dir / "operator.txt").read_text().strip()
        self.watcher = stack.enter_context(
            TestClient(
                cluster.mqtt_port(2),
                "watcher",
                username="operator",
                password=self.operator,
                keepalive=keepalive,
            )
        )
        self.watcher.subscribe(TOPICS.status)
        self.watcher.wait_for(_online("a"), 30)
        self.clients = [
            stack.enter_context(
                TestClient(
                    cluster.mqtt_port(k), name, password=passwords[name], keepalive=keepalive
                )
            )
            for k, name in ((1, "alice"), (2, "bob"))
        ]
        alice, bob = self.clients
        assert alice.send({"type": "join", "name": "Alice"}, timeout=30)["ok"]
        assert bob.send({"type": "join", "name": "Bob"}, timeout=30)["ok"]
        assert alice.send({"type": "start", "max_rounds": 99}, timeout=30)["ok"]
        self.book = StrictBook()
        self.storm = stack.enter_context(TurnStorm(self.clients, self.book, SEED))

    def mark(self) -> int:
        return len(self.watcher.messages)


@pytest.mark.timeout(600)
def test_kill_9_of_the_active_service_mid_storm(tmp_path: Path, cluster: NatsCluster) -> None:
    with ExitStack() as stack:
        game = _Game(stack, tmp_path, cluster)
        active, standby = "a", "b"
        takeovers: list[float] = []
        epochs: list[int] = []
        for _ in range(ROUNDS):
            game.storm.resume()
            game.book.wait_for_acks(20, timeout=60)
            mark = game.mark()
            dead_at = time.monotonic()
            game.services[active].kill()
            status = game.watcher.wait_for(_online(standby), TAKEOVER_DEADLINE_S, after=mark)
            takeovers.append(time.monotonic() - dead_at)
            epochs.append(status.json()["epoch"])
            game.book.wait_for_acks(10, timeout=60)  # the game goes on, mid-storm
            game.services[active].start().wait_line("tablehub standby")
            game.storm.pause()
            game.storm.barrier(timeout=60)
            _check(cluster, game.book, game.watcher)
            active, standby = standby, active
        game.storm.pause()
    print(
        f"\ntakeover after kill -9 ({ROUNDS} rounds): median {statistics.median(takeovers):.2f} s,"
        f" max {max(takeovers):.2f} s; all: {[round(t, 2) for t in takeovers]};"
        f" {len(game.book.acked)} commands acknowledged, 0 lost, 0 applied twice"
    )
    assert epochs == sorted(set(epochs)), f"an epoch was not raised: {epochs}"


@pytest.mark.timeout(300)
def test_a_paused_active_service_wakes_up_as_a_standby(
    tmp_path: Path, cluster: NatsCluster
) -> None:
    with ExitStack() as stack:
        game = _Game(stack, tmp_path, cluster)
        a, b = game.services["a"], game.services["b"]
        game.storm.resume()
        game.book.wait_for_acks(20, timeout=60)
        a_lines = len(a.lines)
        a.signal(signal.SIGSTOP)
        stack.callback(a.signal, signal.SIGCONT)
        status = game.watcher.wait_for(_online("b"), 60).json()
        game.book.wait_for_acks(20, timeout=60)  # b serves the storm
        game.watcher.subscribe(TOPICS.game_state("main"))
        woken = game.mark()
        a.signal(signal.SIGCONT)
        a.wait_line("tablehub standby", after=a_lines, timeout=60)
        game.book.wait_for_acks(20, timeout=60)  # b still serves
        game.storm.pause()
        game.storm.barrier(timeout=60)
        _check(cluster, game.book, game.watcher)
        # nothing from a since it woke: every status is b's, every state of b's epoch
        seen = game.watcher.messages[woken:]
        statuses = [m.json() for m in seen if m.topic == TOPICS.status]
        assert all(s.get("instance") == "b" and s["state"] == "online" for s in statuses), statuses
        states = [m.json() for m in seen if m.topic == TOPICS.game_state("main")]
        assert states, "no state seen after a woke"
        assert {s["epoch"] for s in states} == {status["epoch"]}
        assert "steps down to standby" in a.log_text()
        # a is a working standby: it takes over when b dies
        mark = game.mark()
        b.kill()
        game.watcher.wait_for(_online("a"), 60, after=mark)
        game.storm.resume()
        game.book.wait_for_acks(20, timeout=60)
        game.storm.pause()
        game.storm.barrier(timeout=60)
        _check(cluster, game.book, game.watcher)


@pytest.mark.timeout(300)
def test_a_command_resent_across_a_failover_is_applied_once(
    tmp_path: Path, cluster: NatsCluster
) -> None:
    with ExitStack() as stack:
        game = _Game(stack, tmp_path, cluster)
        alice = game.clients[0]
        game.storm.pause()
        game.storm.barrier(timeout=60)
        for n, resends in enumerate((2, 3, 5)):  # the active one alternates: a, b, a
            active, standby = ("a", "b") if n % 2 == 0 else ("b", "a")
            rid = f"resent-{n}"
            command = {"type": "rename", "name": f"Alice {n}", "request_id": rid}
            mark = game.mark()
            alice.publish(TOPICS.game_command("main", "alice"), command)
            game.services[active].kill()  # maybe before, maybe after it stored the command
            game.watcher.wait_for(_online(standby), 60, after=mark)
            replies = [_answered(alice, command) for _ in range(resends)]
            assert all(reply == replies[0] for reply in replies), replies
            assert replies[0]["ok"] is True, replies
            game.book.book(replies[0])
            entries = _check(cluster, game.book, game.watcher)
            assert [e.version for e in entries if e.command.request_id == rid] == [
                replies[0]["version"]
            ]
            game.services[active].start().wait_line("tablehub standby")


@pytest.mark.timeout(300)
def test_a_late_last_will_of_an_old_active_service_is_overwritten(
    tmp_path: Path, cluster: NatsCluster
) -> None:
    """The broker publishes an old active's last will (retained ``offline``) when it gives up
    on its connection, which may be long after a standby took over (a paused process):
    the active one publishes its own status again at once."""
    with ExitStack() as stack:
        game = _Game(stack, tmp_path, cluster)
        game.storm.pause()
        url = parse_broker_url(cluster.url)
        assert url.password is not None
        late_will = {
            "state": "offline",
            "epoch": 1,
            "version": "0.1.0",
            "started_at": "2026-12-06T00:00:00Z",
            "instance": "gone",
        }
        service = stack.enter_context(
            TestClient(
                cluster.mqtt_port(1),
                "tablehub-service-gone",
                username=url.username,
                password=url.password.get_secret_value(),
            )
        )
        mark = game.mark()
        service.publish(TOPICS.status, late_will, retain=True)
        game.watcher.wait_for(lambda m: m.json() == late_will, 30, after=mark)
        game.watcher.wait_for(_online("a"), 30, after=mark)
        with TestClient(
            cluster.mqtt_port(0), "late", username="operator", password=game.operator
        ) as late:
            late.subscribe(TOPICS.status)
            retained = late.wait_for(lambda m: m.topic == TOPICS.status, 30).json()
        assert retained["instance"] == "a"
        assert retained["state"] == "online"
