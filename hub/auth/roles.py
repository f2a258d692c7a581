"""Roles: what kind of client an identity is."""

from __future__ import annotations

from enum import StrEnum

__all__ = ["Role"]


class Role(StrEnum):
    PLAYER = "player"
    """A phone; credentials are short-lived session tokens from the web bridge."""
    OPERATOR = "operator"
    """The table owner: reads everything, resets, undoes, kicks."""
    DISPLAY = "display"
    """A Pi node at the table."""
    SERVICE = "service"
    """The state service itself; never usable from outside the process."""
