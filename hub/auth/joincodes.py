"""Join codes: the digits a phone needs to get a player session for a game.

``DATA_DIR/join_codes.json`` (mode 0600, written atomically) holds the current code of
each game. A game gets a code on first use; the operator rotates it (``POST
/api/games/{game}/join-code``), and the hub publishes it retained on ``R/games/{game}/join``
for the table's displays. After ``rotate_after`` wrong guesses for a game (from any
addresses) the code is due to rotate by itself: per-address throttling alone cannot hold
six digits against many addresses, a moving code can.
"""

from __future__ import annotations

import hmac
import json
import secrets
import threading
from pathlib import Path
from typing import Protocol

from hub.auth.errors import AuthError
from hub.files import write_atomic

__all__ = [
    "DEFAULT_JOIN_CODE_DIGITS",
    "DEFAULT_JOIN_CODE_MAX_FAILURES",
    "JoinCodeStore",
    "JoinCodes",
    "WrongGuesses",
    "check_join_code_settings",
    "new_join_code",
    "same_code",
]

DEFAULT_JOIN_CODE_DIGITS = 6
DEFAULT_JOIN_CODE_MAX_FAILURES = 30


class JoinCodes(Protocol):
    """The join codes: a file (``JoinCodeStore``) or a NATS cluster's key-value bucket
    (``hub.nats.stores``)."""

    def code(self, game: str) -> str:
        """The game's current code (made on first use)."""

    def rotate(self, game: str) -> str:
        """Replace the game's code with a new one (never the same)."""

    def check(self, game: str, code: str) -> bool:
        """True if ``code`` is the game's current code; a wrong one is counted."""

    def take_rotation_due(self, game: str) -> bool:
        """True once per ``rotate_after`` wrong guesses (counted by this process)."""


def check_join_code_settings(digits: int, rotate_after: int) -> None:
    if not 4 <= digits <= 6:
        msg = "join codes have 4 to 6 digits"
        raise AuthError(msg)
    if rotate_after < 1:
        msg = "join codes rotate after at least one wrong guess"
        raise AuthError(msg)


def new_join_code(digits: int, old: str | None = None) -> str:
    """``digits`` random digits, never ``old``."""
    while True:
        code = f"{secrets.randbelow(10**digits):0{digits}d}"
        if code != old:
            return code


def same_code(current: str | None, code: str) -> bool:
    return current is not None and hmac.compare_digest(
        current.encode(), code.encode(errors="replace")
    )


class WrongGuesses:
    """Wrong guesses per game since its code was made (this process's); thread-safe."""

    def __init__(self, rotate_after: int) -> None:
        self.rotate_after = rotate_after
        self._lock = threading.Lock()
        self._wrong: dict[str, int] = {}

    def count(self, game: str) -> None:
        with self._lock:
            self._wrong[game] = self._wrong.get(game, 0) + 1

    def reset(self, game: str) -> None:
        with self._lock:
            self._wrong.pop(game, None)

    def take_rotation_due(self, game: str) -> bool:
        with self._lock:
            if self._wrong.get(game, 0) < self.rotate_after:
                return False
            self._wrong[game] = 0
            return True


class JoinCodeStore:
    """The current join code of each game; thread-safe."""

    FILENAME = "join_codes.json"

    def __init__(
        self,
        data_dir: Path,
        *,
        digits: int = DEFAULT_JOIN_CODE_DIGITS,
        rotate_after: int = DEFAULT_JOIN_CODE_MAX_FAILURES,
    ) -> None:
        check_join_code_settings(digits, rotate_after)
        self.path = data_dir / self.FILENAME
        self.digits = digits
        self.rotate_after = rotate_after
        self._lock = threading.Lock()
        self._wrong = WrongGuesses(rotate_after)

    def _read(self) -> dict[str, str]:
        try:
            raw = json.loads(self.path.read_text())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            msg = f"cannot read the join codes {self.path}: {exc}"
            raise AuthError(msg) from exc
        codes = raw.get("codes") if isinstance(raw, dict) else None
        if not isinstance(codes, dict):
            msg = f"cannot read the join codes {self.path}: no 'codes' object"
            raise AuthError(msg)
        return {str(game): str(code) for game, code in codes.items()}

    def _write(self, codes: dict[str, str]) -> None:
        write_atomic(self.path, json.dumps({"codes": codes}, indent=2))

    def code(self, game: str) -> str:
        """The game's current code (made on first use)."""
        with self._lock:
            codes = self._read()
            if game not in codes:
                codes[game] = new_join_code(self.digits)
                self._write(codes)
            return codes[game]

    def rotate(self, game: str) -> str:
        """Replace the game's code with a new one (never the same)."""
        with self._lock:
            codes = self._read()
            codes[game] = new = new_join_code(self.digits, codes.get(game))
            self._write(codes)
        self._wrong.reset(game)
        return new

    def check(self, game: str, code: str) -> bool:
        """True if ``code`` is the game's current code; a wrong one is counted."""
        with self._lock:
            right = same_code(self._read().get(game), code)
        if not right:
            self._wrong.count(game)
        return right

    def take_rotation_due(self, game: str) -> bool:
        """True once per ``rotate_after`` wrong guesses: the caller then rotates the code
        (and publishes it). The count restarts at once, so only one caller rotates."""
        return self._wrong.take_rotation_due(game)
