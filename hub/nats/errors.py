"""The hub.nats error tree: one class, NatsError (a cluster's files missing or invalid,
the callout unable to reach the cluster)."""

from __future__ import annotations

__all__ = ["NatsError"]


class NatsError(Exception):
    """The NATS cluster's files or connection failed; the message says which and why."""
