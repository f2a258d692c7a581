"""Fixtures: a real hub on free ports per test, and real paho clients with real users."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.hub import HubProcess, password_of
from tests.support.mosquitto import Mosquitto
from tests.support.mqtt import TestClient
from tests.support.nats import NatsCluster, nats_server

ClientFactory = Callable[..., TestClient]


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "var"


@pytest.fixture(params=["embedded", "mosquitto", "nats"])
def hub(request: pytest.FixtureRequest, data_dir: Path) -> Iterator[HubProcess]:
    """The hub with its embedded broker, the same hub against Debian's real mosquitto
    configured by ``hub mosquitto-config``, and against a one-node NATS cluster configured
    by ``hub nats-config`` (logins answered by the hub's callout): the contract must hold
    on all three."""
    if request.param == "embedded":
        with HubProcess(data_dir) as running:
            yield running
        return
    if request.param == "nats":
        if nats_server() is None:
            pytest.skip("nats-server is missing (make setup installs it)")
        with (
            NatsCluster(data_dir.parent / "nats") as cluster,
            HubProcess(data_dir, broker=cluster) as running,
        ):
            yield running
        return
    with (
        Mosquitto(data_dir, data_dir.parent / "mosquitto") as broker,
        HubProcess(data_dir, broker=broker) as running,
    ):
        broker.reload("operator", password_of(running, "operator"))
        yield running


@pytest.fixture
def connect(hub: HubProcess) -> Iterator[ClientFactory]:
    """``connect("alice")`` -> a TestClient logged in as a player (created on first use);
    ``connect("operator")`` logs in as the first-run operator."""
    clients: list[TestClient] = []

    def factory(client_id: str, *, role: str = "player", **kwargs: object) -> TestClient:
        client = TestClient(
            hub.mqtt_port,
            client_id,
            password=password_of(hub, client_id, role),
            **kwargs,  # type: ignore[arg-type]
        )
        client.__enter__()
        clients.append(client)
        return client

    yield factory
    for client in clients:
        client.close()
