"""The JetStream journal on a real 3-node cluster: fencing between two writers, and
appends that go on (acknowledged by a quorum of the 3 replicas) with a node killed.
The journal's contract itself runs on one node in tests/state/test_journal_contract.py."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import pytest

from hub.nats.journal import cluster_journal
from hub.protocol.broker_url import parse_broker_url
from hub.state.errors import FencedError, StorageUnavailableError
from tests.state.test_store import play
from tests.support.nats import NatsCluster, nats_server

pytestmark = pytest.mark.skipif(nats_server() is None, reason="nats-server is missing")


def _run(test: Coroutine[Any, Any, None]) -> None:
    asyncio.run(asyncio.wait_for(test, timeout=120))


def test_a_writer_fenced_off_by_a_new_epoch_stores_nothing(tmp_path: Path) -> None:
    initial, entries, _ = play()
    with NatsCluster(tmp_path / "nats", nodes=3) as cluster:
        url = parse_broker_url(cluster.url)

        async def test() -> None:
            async with cluster_journal(url) as old, cluster_journal(url) as new:
                assert await old.next_epoch() == 1
                await old.append(entries[:2], [initial])
                assert await new.next_epoch() == 2  # the standby takes over
                with pytest.raises(FencedError):
                    await old.append(entries[2:3])
                with pytest.raises(FencedError):
                    await old.append([], [initial])  # snapshots are fenced too
                await new.append(entries[2:])
                assert await old.entries("main") == entries  # it reads the new one's
                assert await old.next_epoch() == 3  # and may take over again later
                with pytest.raises(FencedError):
                    await new.append([], [initial])

        _run(test())


def test_appends_go_on_with_a_node_killed(tmp_path: Path) -> None:
    initial, entries, _ = play()
    with NatsCluster(tmp_path / "nats", nodes=3) as cluster:
        url = parse_broker_url(cluster.url)

        async def test() -> None:
            async with cluster_journal(url) as journal:
                await journal.next_epoch()
                await journal.append(entries[:3], [initial])
                cluster.kill(0)
                deadline = asyncio.get_running_loop().time() + 60
                while True:  # the stream may be re-electing its leader for a while
                    try:
                        await journal.append(entries[3:])
                        break
                    except FencedError:
                        raise
                    except StorageUnavailableError:
                        if asyncio.get_running_loop().time() > deadline:
                            raise
                        await asyncio.sleep(0.2)
            async with cluster_journal(url, read_only=True) as reader:
                assert await reader.entries("main") == entries
                assert await reader.epoch() == 1

        _run(test())
