"""One way to open (and close) a connection to the cluster, for every NATS client of the hub.

The key-value stores, the auth callout (and its system-account kicker), the lease and the
journal all reconnect for ever, give up a CONNECT after ``connect_timeout`` seconds, and log
a failed reconnect as one warning line (``error_logger``) instead of nats-py's traceback.
They differ only in how soon they retry (the lease and the journal sooner: a standby's
takeover waits on them) and in whether the first server is preferred.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence

import nats
from nats.aio.client import Client as NatsClient

from hub.nats.errors import error_logger

__all__ = ["close_quietly", "connect"]

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
