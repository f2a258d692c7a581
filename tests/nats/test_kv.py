"""The key-value mirrors across the loss of a node: a copy whose watch lived on the killed
node watches again by itself and catches up with the writes made through the others."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from hub.nats.errors import NatsError
from hub.nats.kv import Mirror
from tests.support.nats import NatsCluster, nats_server
from tests.support.stores import kv_cluster

pytestmark = pytest.mark.skipif(nats_server() is None, reason="nats-server is missing")


def _put(bucket: Mirror, key: str, deadline: float) -> None:
    """Write, again until the cluster takes it (JetStream elects leaders after a kill)."""
    while True:
        try:
            bucket.put(key, b"1")
        except NatsError:
            assert time.monotonic() < deadline, f"{key} never written"
            time.sleep(0.2)
        else:
            return


@pytest.mark.timeout(180)
def test_every_copy_catches_up_after_kill_9_of_any_node(tmp_path: Path) -> None:
    with NatsCluster(tmp_path / "nats", nodes=3) as cluster:
        # one copy per node first in its server list: whichever node dies, some copy's
        # connection (and maybe its watch) was there
        copies = [kv_cluster(cluster, first=k) for k in range(3)]
        writer = kv_cluster(cluster, first=2)
        with copies[0] as a, copies[1] as b, copies[2] as c, writer as w:
            mirrors = [kv.bucket("probe") for kv in (a, b, c)]
            out = w.bucket("probe")
            killed = time.monotonic()
            cluster.kill(0)
            for i in range(20):
                _put(out, f"k{i}", killed + 60)
            deadline = time.monotonic() + 60
            for mirror in mirrors:
                while mirror.get("k19") is None:
                    assert time.monotonic() < deadline, "a copy never caught up"
                    time.sleep(0.05)
                assert {key for key, _ in mirror.items()} == {f"k{i}" for i in range(20)}
            print(f"every copy caught up {time.monotonic() - killed:.1f} s after the kill")
