"""What the service counts for R/stats and /metrics: commands accepted and rejected, per
game and per error code (pure)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from hub.protocol import ErrorCode
from hub.protocol.messages import GameCounters

__all__ = ["CommandCounters"]


class CommandCounters:
    """Counts since the service started; rejections for unknown games belong to no game."""

    def __init__(self, games: Iterable[str]) -> None:
        self._accepted: Counter[str] = Counter(dict.fromkeys(games, 0))
        self._rejected: Counter[str] = Counter(dict.fromkeys(self._accepted, 0))
        self._unattributed = 0
        self._by_code: Counter[ErrorCode] = Counter()

    def accepted(self, game: str, count: int = 1) -> None:
        self._accepted[game] += count

    def rejected(self, game: str | None, code: ErrorCode, count: int = 1) -> None:
        self._by_code[code] += count
        if game is not None and game in self._accepted:
            self._rejected[game] += count
        else:
            self._unattributed += count

    def by_code(self) -> dict[ErrorCode, int]:
        return dict(self._by_code)

    def per_game(self) -> dict[str, GameCounters]:
        return {
            game: GameCounters(accepted=self._accepted[game], rejected=self._rejected[game])
            for game in self._accepted
        }

    @property
    def total_accepted(self) -> int:
        return sum(self._accepted.values())

    @property
    def total_rejected(self) -> int:
        return sum(self._rejected.values()) + self._unattributed
