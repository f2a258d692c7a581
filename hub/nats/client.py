"""One way to open (and close) a connection to the cluster, for every NATS client of the hub.

The key-value stores, the auth callout (and its system-account kicker), the lease and the
journal all reconnect for ever, give up a CONNECT after ``connect_timeout`` seconds, and log
a failed reconnect as one warning line (``error_logger``) instead of nats-py's traceback.
They differ only in how soon they retry (the lease and the journal sooner: a standby's
takeover waits on them) and in whether the first server is preferred. ``while_electing``
asks JetStream again while it has no leader.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

import nats
from nats.aio.client import Client as NatsClient
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js.errors import NoStreamResponseError, ServiceUnavailableError

from hub.nats.errors import error_logger

__all__ = ["ELECTING", "close_quietly", "connect", "while_electing"]

_T = TypeVar("_T")
Callback = Callable[[], Awaitable[None]]


async def connect(
    servers: Sequence[str],
    *,
    user: str | None,
    password: str | None,
    name: str,
    logger: logging.Logger,
    what: str,
    reconnect_wait: float = 0.5,
    connect_timeout: float = 5.0,
    prefer_first: bool = False,
    disconnected: Callback | None = None,
    reconnected: Callback | None = None,
) -> NatsClient:
    """A connected client that reconnects for ever; ``prefer_first`` tries the servers in
    order (the first is the node this process stands beside) instead of shuffled."""
    options: dict[str, Callback] = {}
    if disconnected is not None:
        options["disconnected_cb"] = disconnected
    if reconnected is not None:
        options["reconnected_cb"] = reconnected
    return await nats.connect(
        servers=list(servers),
        user=user,
        password=password,
        name=name,
        dont_randomize=prefer_first,
        allow_reconnect=True,
        max_reconnect_attempts=-1,
        reconnect_time_wait=reconnect_wait,
        connect_timeout=connect_timeout,
        error_cb=error_logger(logger, what),
        **options,
    )


async def close_quietly(client: NatsClient | None) -> None:
    """Close ``client`` unless it is absent or closed already."""
    if client is not None and not client.is_closed:
        await client.close()


ELECTING: tuple[type[Exception], ...] = (
    NatsTimeoutError,
    NoRespondersError,
    NoStreamResponseError,
    ServiceUnavailableError,
)
"""What JetStream answers while the cluster or a stream elects a leader (a node died, or
the cluster has just started): its API calls time out, find no responder, or answer 503."""


async def while_electing(
    call: Callable[[], Awaitable[_T]],
    *,
    patience: float,
    pause: float,
    logger: logging.Logger,
    what: str,
) -> _T:
    """``call()``, asked again every ``pause`` seconds while JetStream answers as if it had
    no leader (``ELECTING``, also as the cause of a translated error), until ``patience``
    seconds have passed; then the last error is raised."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + patience
    while True:
        try:
            return await call()
        except Exception as exc:
            electing = isinstance(exc, ELECTING) or isinstance(exc.__cause__, ELECTING)
            if not electing or loop.time() >= deadline:
                raise
            logger.info("%s: JetStream has no leader yet (%r); asking again", what, exc)
        await asyncio.sleep(pause)
