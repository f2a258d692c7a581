"""Fixtures: brokers in background threads, parametrized over stock amqtt and the hub.

Tests taking ``kind`` run twice: against stock amqtt 0.12.1, where they are expected to
fail (``xfail(strict=True)``: the suite proves stock amqtt gets it wrong), and against the
hub's broker, where they must pass.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.broker.harness import Kind, RunningBroker

StartBroker = Callable[..., RunningBroker]

STOCK_FAILS = pytest.param(
    "stock",
    marks=pytest.mark.xfail(
        strict=True, raises=AssertionError, reason="stock amqtt 0.12.1 gets this wrong"
    ),
)


@pytest.fixture(params=[STOCK_FAILS, "hub"])
def kind(request: pytest.FixtureRequest) -> Kind:
    value: Kind = request.param
    return value


def _starter(kind: Kind) -> Iterator[StartBroker]:
    started: list[RunningBroker] = []

    def start(**options: Any) -> RunningBroker:
        broker = RunningBroker(kind, **options)
        broker.start()
        started.append(broker)
        return broker

    yield start
    for broker in reversed(started):
        broker.stop()


@pytest.fixture
def start_broker(kind: Kind) -> Iterator[StartBroker]:
    """``start_broker(**BrokerOptions fields)`` -> a running broker of the test's ``kind``."""
    yield from _starter(kind)


@pytest.fixture
def start_hub() -> Iterator[StartBroker]:
    """``start_hub(**BrokerOptions fields)`` -> a running hub broker."""
    yield from _starter("hub")
