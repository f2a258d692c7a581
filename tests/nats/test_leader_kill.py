"""kill -9 of the NATS node that leads the journal stream, mid-storm, with two hubs.

A 3-node cluster, two ``hub serve --broker`` (a active, b standby: ``test_standby``'s
``_Game``), alice and bob storming on nodes 2 and 3, an operator watching on node 3; every
client fails over to the next node when its node dies. Each round the node leading
``TABLEHUB_JOURNAL`` (JetStream's stream info names its server) dies mid-storm: the stream
elects another leader, the active service's appends wait for it (or a standby takes
over), the players get answers again; the node is started again. After each round, with
the game quiet: every ``ok``-acknowledged command is in the journal exactly once at its
version, versions are gapless, no version was acknowledged for two commands, and the
retained state is the journal's (``test_standby._check``). Per round the test prints the
leader killed, the active instance before and after, and the time until both players are
answered again (printed, never asserted: a loaded machine).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from contextlib import ExitStack
from pathlib import Path
from typing import TypeVar

import nats
import nats.errors
import nats.js.errors
import pytest
from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext
from nats.js.api import ClusterInfo

from hub.nats.config import read_callout
from hub.nats.journal import STREAM
from hub.protocol.broker_url import parse_broker_url
from tests.nats.test_standby import _check, _Game
from tests.support.mqtt import TOPICS, TestClient
from tests.support.nats import NatsCluster, fail_over, nats_server

pytestmark = pytest.mark.skipif(nats_server() is None, reason="nats-server is missing")

ROUNDS = 3
KEEPALIVE = 5
"""The clients' MQTT keepalive: paho gives up on a CONNACK only after it (see
``test_faults.KEEPALIVE``), and a node holds a CONNECT while its JetStream has no leader."""
DEADLINE = 120.0
"""Seconds a round may take to recover: leader elections take seconds, the rest is room
for a loaded machine."""
T = TypeVar("T")


async def _jetstream(cluster: NatsCluster) -> NatsClient:
    """A NATS connection as the service user (its account holds the journal and the MQTT
    streams)."""
    url = parse_broker_url(cluster.url)
    assert url.callout is not None
    servers = read_callout(Path(url.callout)).servers
    password = url.password.get_secret_value() if url.password else None
    return await nats.connect(
        servers=list(servers), user=url.username, password=password, connect_timeout=5
    )


def _poll(cluster: NatsCluster, probe: Callable[[JetStreamContext], Awaitable[T | None]]) -> T:
    """Ask ``probe`` every 0.2 s until it returns something (JetStream errors: asked again)."""

    async def ask() -> T:
        nc = await _jetstream(cluster)
        try:
            js = nc.jetstream(timeout=5)
            while True:
                with contextlib.suppress(nats.errors.Error, nats.js.errors.Error):
                    found = await probe(js)
                    if found is not None:
                        return found
                await asyncio.sleep(0.2)
        finally:
            await nc.close()

    return asyncio.run(asyncio.wait_for(ask(), DEADLINE))


async def _leader(js: JetStreamContext) -> str | None:
    """The server name (``node1``..) leading the journal stream, if it has a leader."""
    info = await js.stream_info(STREAM)
    return info.cluster.leader if info.cluster is not None else None


def _whole(cluster: ClusterInfo | None) -> bool:
    """A leader, and every other replica online and current."""
    if cluster is None or not cluster.leader:
        return False
    return all(p.current and not p.offline for p in cluster.replicas or ())


async def _healed(js: JetStreamContext) -> bool | None:
    """True once every stream of the account (the journal, the KV buckets, the MQTT
    sessions' streams) and every consumer has a leader and all its replicas current: a
    restarted node caught up. Killing another node before would take the quorum of the
    groups it still lags in: two nodes down for them, beyond what the cluster promises."""
    for stream in await js.streams_info():
        if not _whole(stream.cluster):
            return None
        for consumer in await js.consumers_info(stream.config.name or ""):
            if not _whole(consumer.cluster):
                return None
    return True


def _active(watcher: TestClient) -> str:
    """The instance the newest ``online`` status names."""
    statuses = [m.json() for m in watcher.messages if m.topic == TOPICS.status]
    online = [s for s in statuses if s["state"] == "online"]
    return str(online[-1].get("instance")) if online else "?"


@pytest.mark.timeout(900)
def test_kill_9_of_the_journal_leader_node_mid_storm(tmp_path: Path) -> None:
    rounds: list[str] = []
    with ExitStack() as stack:
        cluster = stack.enter_context(NatsCluster(tmp_path / "nats", nodes=3))
        names = [node.name for node in cluster.nodes]
        ports = [cluster.mqtt_port(k) for k in range(3)]
        game = _Game(stack, tmp_path, cluster, keepalive=KEEPALIVE)
        # subscribed before fail_over: TestClient.subscribe replaces its SUBACK check
        game.watcher.subscribe(TOPICS.game_state("main"))
        for client in (*game.clients, game.watcher):
            fail_over(client, ports)
        started = time.monotonic()
        for rnd in range(ROUNDS):
            game.storm.resume()
            game.book.wait_for_acks(20, timeout=DEADLINE)
            leader = _poll(cluster, _leader)
            target = names.index(leader)
            active_before = _active(game.watcher)
            acked_before = len(game.book.snapshot())
            t0 = time.monotonic()
            cluster.kill(target)
            game.storm.pause(DEADLINE)
            game.storm.barrier(DEADLINE)  # both players answered again
            answered = time.monotonic() - t0
            new_leader = _poll(cluster, _leader)
            assert new_leader != leader
            cluster.restart(target)
            _poll(cluster, _healed)
            healed = time.monotonic() - t0
            game.storm.barrier(DEADLINE)
            _check(cluster, game.book, game.watcher)
            rounds.append(
                f"round {rnd + 1}: {leader} led {STREAM} (then {new_leader});"
                f" active {active_before} -> {_active(game.watcher)};"
                f" both players answered after {answered:.1f} s;"
                f" node back and every stream caught up after {healed:.1f} s;"
                f" {len(game.book.snapshot()) - acked_before} commands acked after the kill"
            )
            print("\n" + rounds[-1], flush=True)  # as it goes: a later failure keeps it
        wall = time.monotonic() - started
        game.storm.pause()
    print(
        f"\nkill -9 of the journal leader's node mid-storm: {ROUNDS} rounds in {wall:.1f} s,"
        f" {len(game.book.acked)} commands acked, 0 lost, 0 applied twice"
    )
