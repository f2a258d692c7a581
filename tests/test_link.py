"""The service's link to an external broker: aiomqtt's socket registration, guarded.

aiomqtt 2.5.1 registers paho's socket for writing one loop iteration after paho asks; a
socket closed in between (the broker killed) made ``add_writer`` raise EBADF inside a loop
callback, a traceback in the hub's log (found by tests/faults/test_external_broker.py).
"""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import aiomqtt
import pytest

from hub.link.mqtt import SocketSafeClient

CLIENTS = [
    pytest.param(
        aiomqtt.Client,
        id="stock",
        marks=pytest.mark.xfail(
            strict=True, raises=AssertionError, reason="aiomqtt 2.5.1 gets this wrong"
        ),
    ),
    pytest.param(SocketSafeClient, id="hub"),
]


async def _register_then_close(client_class: type[aiomqtt.Client]) -> list[dict[str, Any]]:
    loop = asyncio.get_running_loop()
    errors: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _loop, context: errors.append(context))
    client = client_class("127.0.0.1", 1)  # never connects: only its paho callbacks are used
    ours, theirs = socket.socketpair()
    with theirs:
        client._on_socket_register_write(client._client, None, ours)
        ours.close()  # the broker went away before the registration ran
        for _ in range(3):
            await asyncio.sleep(0)
    return errors


@pytest.mark.parametrize("client_class", CLIENTS)
def test_a_socket_closed_before_its_write_registration_raises_nothing(
    client_class: type[aiomqtt.Client],
) -> None:
    assert asyncio.run(_register_then_close(client_class)) == []


async def _register_open() -> bool:
    client = SocketSafeClient("127.0.0.1", 1)
    ours, theirs = socket.socketpair()
    with ours, theirs:
        client._on_socket_register_write(client._client, None, ours)
        for _ in range(3):
            await asyncio.sleep(0)
        return asyncio.get_running_loop().remove_writer(ours.fileno())


def test_an_open_socket_is_registered_for_writing() -> None:
    assert asyncio.run(_register_open())
