"""The closed set of error codes a reply can carry (docs/protocol.md lists them)."""

from __future__ import annotations

from enum import StrEnum

__all__ = ["ErrorCode"]


class ErrorCode(StrEnum):
    """Why a command was rejected. Adding a member is a change to the public API."""

    INVALID_JSON = "invalid_json"
    """The payload is not UTF-8 JSON, or not a JSON object."""
    INVALID_COMMAND = "invalid_command"
    """A known command with missing, unknown or badly typed fields."""
    UNKNOWN_COMMAND = "unknown_command"
    """``type`` names no command."""
    UNKNOWN_GAME = "unknown_game"
    """The topic names a game the hub does not run."""
    NOT_SEATED = "not_seated"
    """The command needs a seat and the sender holds none (or the kicked seat is empty)."""
    SEAT_TAKEN = "seat_taken"
    """``join`` asked for a seat someone else holds."""
    GAME_FULL = "game_full"
    """``join`` found no free seat."""
    ALREADY_SEATED = "already_seated"
    """``join`` from a client that already holds a seat."""
    NOT_YOUR_TURN = "not_your_turn"
    """``end_turn`` from the seat that is not to move."""
    WRONG_STATUS = "wrong_status"
    """The command is not allowed in the game's current status."""
    NOT_ENOUGH_PLAYERS = "not_enough_players"
    """``start``/``resume`` needs both seats taken."""
    NOTHING_TO_UNDO = "nothing_to_undo"
    """``undo`` with no earlier accepted command left to undo."""
    VERSION_CONFLICT = "version_conflict"
    """``expected_version`` does not match the game's version."""
    FORBIDDEN = "forbidden"
    """The sender's role may not send this command, or it spoofed another client's topic."""
    RATE_LIMITED = "rate_limited"
    """The sender exceeded its command rate."""
    PAYLOAD_TOO_LARGE = "payload_too_large"
    """The payload is over the size limit (16 KiB by default)."""
    STORAGE_UNAVAILABLE = "storage_unavailable"
    """The journal could not be written (disk full, read-only): nothing was applied."""
