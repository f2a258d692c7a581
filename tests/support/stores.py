"""The auth stores over each backend, for tests that must hold on both: the files and
SQLite of a data dir, and a NATS node's key-value buckets (a real ``nats-server``).

``backend`` is parametrized ``file`` / ``nats``; each ``backend.sessions(...)`` (and
``users()``, ``join_codes(...)``) opens a store as another process would: on NATS with a
connection of its own, on the same buckets (fresh ones for each test).
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from hub.auth import JoinCodes, JoinCodeStore, Sessions, SessionStore, Users, UserStore
from hub.nats.config import read_callout
from hub.nats.kv import KvCluster
from hub.nats.stores import KvJoinCodeStore, KvSessionStore, KvUserStore, open_buckets
from hub.protocol.broker_url import parse_broker_url
from tests.support.nats import NatsCluster, nats_server

__all__ = ["Backend", "backend", "kv_cluster", "nats_node"]

_PREFIXES = itertools.count()


@pytest.fixture(scope="module")
def nats_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsCluster]:
    if nats_server() is None:
        pytest.skip("nats-server is missing")
    with NatsCluster(tmp_path_factory.mktemp("nats"), nodes=1) as cluster:
        yield cluster


def kv_cluster(cluster: NatsCluster, *, first: int = 0) -> KvCluster:
    """A key-value connection to ``cluster`` as the service (what ``hub serve`` uses),
    trying node ``first`` (from 0) first."""
    url = parse_broker_url(cluster.url)
    assert url.callout is not None
    assert url.username is not None
    assert url.password is not None
    servers = read_callout(Path(url.callout)).servers
    servers = servers[first:] + servers[:first]
    return KvCluster(servers, url.username, url.password.get_secret_value())


@dataclass
class Backend:
    name: str
    data_dir: Path
    cluster: NatsCluster | None = None
    prefix: str = ""

    @contextlib.contextmanager
    def _buckets(self) -> Iterator[Any]:
        assert self.cluster is not None
        with kv_cluster(self.cluster) as kv:
            yield open_buckets(kv, self.prefix)

    @contextlib.contextmanager
    def users(self) -> Iterator[Users]:
        if self.cluster is None:
            yield UserStore(self.data_dir)
            return
        with self._buckets() as (users, _, _):
            yield KvUserStore(users)

    @contextlib.contextmanager
    def sessions(self, **options: Any) -> Iterator[Sessions]:
        if self.cluster is None:
            with SessionStore(self.data_dir, **options) as store:
                yield store
            return
        with self._buckets() as (_, sessions, _):
            yield KvSessionStore(sessions, **options)

    @contextlib.contextmanager
    def join_codes(self, **options: Any) -> Iterator[JoinCodes]:
        if self.cluster is None:
            yield JoinCodeStore(self.data_dir, **options)
            return
        with self._buckets() as (_, _, codes):
            yield KvJoinCodeStore(codes, **options)

    def stored_bytes(self) -> bytes:
        """Everything the backend holds, as bytes (to look for secrets in)."""
        if self.cluster is None:
            return b"".join(p.read_bytes() for p in sorted(self.data_dir.iterdir()))
        with self._buckets() as buckets:
            return b"".join(e.value for b in buckets for _, e in b.items())


@pytest.fixture(params=["file", "nats"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    if request.param == "file":
        return Backend("file", tmp_path)
    cluster = request.getfixturevalue("nats_node")
    return Backend("nats", tmp_path, cluster, prefix=f"t{next(_PREFIXES)}")
