"""The topic map: every topic of the contract is built and parsed here, nowhere else.

Layout under the root R (default ``tablehub``)::

    R/status                          retained, state service (last will: offline)
    R/stats                           retained, state service, every 10 s
    R/games/{game}/state              retained, state service
    R/games/{game}/events             state service, one per accepted command
    R/games/{game}/cmd/{client_id}    commands from client_id
    R/clients/{client_id}/reply       replies to client_id
    R/clients/{client_id}/presence    retained, client_id (last will: offline)
    R/games/{game}/join               retained, state service: the join code (displays)
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = [
    "CLIENT_ID_PATTERN",
    "GAME_NAME_PATTERN",
    "CommandTopic",
    "Topics",
    "topic_matches",
    "valid_client_id",
    "valid_game_name",
]

GAME_NAME_PATTERN = r"[a-z0-9][a-z0-9_-]{0,31}"
CLIENT_ID_PATTERN = r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}"
_GAME_RE = re.compile(GAME_NAME_PATTERN)
_CLIENT_RE = re.compile(CLIENT_ID_PATTERN)
_ROOT_RE = re.compile(r"[A-Za-z0-9_-]+(/[A-Za-z0-9_-]+)*")


def valid_game_name(name: str) -> bool:
    """Game names: lower-case letters, digits, ``_`` and ``-``, at most 32 chars."""
    return _GAME_RE.fullmatch(name) is not None


def valid_client_id(client_id: str) -> bool:
    """Client ids name one topic level: letters, digits, ``_ . -``, at most 64 chars."""
    return _CLIENT_RE.fullmatch(client_id) is not None


@dataclass(frozen=True, slots=True)
class CommandTopic:
    """A parsed ``R/games/{game}/cmd/{client_id}`` topic."""

    game: str
    client_id: str


@dataclass(frozen=True, slots=True)
class Topics:
    """Builds and parses the topics under one root."""

    root: str = "tablehub"

    def __post_init__(self) -> None:
        if _ROOT_RE.fullmatch(self.root) is None:
            msg = (
                f"invalid topic root {self.root!r}: use letters, digits, '_' and '-',"
                " levels separated by '/'"
            )
            raise ValueError(msg)

    # --- builders -----------------------------------------------------------------
    @property
    def status(self) -> str:
        return f"{self.root}/status"

    @property
    def stats(self) -> str:
        return f"{self.root}/stats"

    def game_state(self, game: str) -> str:
        return f"{self.root}/games/{game}/state"

    def game_events(self, game: str) -> str:
        return f"{self.root}/games/{game}/events"

    def game_join(self, game: str) -> str:
        return f"{self.root}/games/{game}/join"

    def game_command(self, game: str, client_id: str) -> str:
        return f"{self.root}/games/{game}/cmd/{client_id}"

    def client_reply(self, client_id: str) -> str:
        return f"{self.root}/clients/{client_id}/reply"

    def client_presence(self, client_id: str) -> str:
        return f"{self.root}/clients/{client_id}/presence"

    # --- subscription filters -------------------------------------------------------
    @property
    def all(self) -> str:
        return f"{self.root}/#"

    @property
    def command_filter(self) -> str:
        return f"{self.root}/games/+/cmd/+"

    @property
    def presence_filter(self) -> str:
        return f"{self.root}/clients/+/presence"

    # --- parsers ----------------------------------------------------------------------
    def _levels(self, topic: str) -> list[str] | None:
        prefix = self.root + "/"
        if not topic.startswith(prefix):
            return None
        return topic[len(prefix) :].split("/")

    def parse_command(self, topic: str) -> CommandTopic | None:
        """``R/games/{game}/cmd/{client_id}`` -> CommandTopic; anything else -> None.

        The game name is returned even when it is not a valid name, so the caller can
        answer ``unknown_game``; the client id must be a valid id (it names the reply topic).
        """
        levels = self._levels(topic)
        if levels is None or len(levels) != 4 or levels[0] != "games" or levels[2] != "cmd":
            return None
        game, client_id = levels[1], levels[3]
        if not game or not valid_client_id(client_id):
            return None
        return CommandTopic(game=game, client_id=client_id)

    def parse_presence(self, topic: str) -> str | None:
        """``R/clients/{client_id}/presence`` -> client_id; anything else -> None."""
        levels = self._levels(topic)
        if levels is None or len(levels) != 3 or levels[0] != "clients":
            return None
        if levels[2] != "presence" or not valid_client_id(levels[1]):
            return None
        return levels[1]

    def parse_game_state(self, topic: str) -> str | None:
        """``R/games/{game}/state`` -> game; anything else -> None."""
        levels = self._levels(topic)
        if levels is None or len(levels) != 3 or levels[0] != "games" or levels[2] != "state":
            return None
        return levels[1] if valid_game_name(levels[1]) else None


def topic_matches(topic: str, topic_filter: str) -> bool:
    """MQTT 3.1.1 filter matching (``+``, ``#``, and ``$`` topics hidden from wildcards)."""
    if topic.startswith("$") and topic_filter[:1] in ("+", "#"):
        return False
    levels = topic.split("/")
    for index, part in enumerate(topic_filter.split("/")):
        if part == "#":
            return True
        if index >= len(levels) or (part != "+" and part != levels[index]):
            return False
    return len(levels) == len(topic_filter.split("/"))
