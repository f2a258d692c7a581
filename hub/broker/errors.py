"""Errors of the broker package.

BrokerError          the embedded broker could not start or is not running
"""

from __future__ import annotations

__all__ = ["BrokerError"]


class BrokerError(Exception):
    """The embedded broker could not start, or was used while not running."""
