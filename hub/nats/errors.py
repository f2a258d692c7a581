"""The hub.nats error tree: one class, NatsError (a cluster's files missing or invalid,
the callout unable to reach the cluster)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

__all__ = ["NatsError", "error_logger"]


class NatsError(Exception):
    """The NATS cluster's files or connection failed; the message says which and why."""


def error_logger(logger: logging.Logger, what: str) -> Callable[[Exception], Awaitable[None]]:
    """An ``error_cb`` for ``nats.connect``: one warning line per error. nats-py's default
    logs a whole traceback at ERROR for every failed attempt to reach a dead node."""

    async def log(exc: Exception) -> None:
        logger.warning("NATS (%s): %r", what, exc)

    return log
