"""Fixtures: a real hub on free ports per test, and real paho clients."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.hub import HubProcess
from tests.support.mqtt import TestClient

ClientFactory = Callable[..., TestClient]


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "var"


@pytest.fixture
def hub(data_dir: Path) -> Iterator[HubProcess]:
    with HubProcess(data_dir) as running:
        yield running


@pytest.fixture
def connect(hub: HubProcess) -> Iterator[ClientFactory]:
    """``connect("alice")`` -> a connected TestClient on the running hub (closed after)."""
    clients: list[TestClient] = []

    def factory(client_id: str, **kwargs: object) -> TestClient:
        client = TestClient(hub.mqtt_port, client_id, **kwargs)  # type: ignore[arg-type]
        client.__enter__()
        clients.append(client)
        return client

    yield factory
    for client in clients:
        client.close()
