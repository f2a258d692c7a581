"""CommandCounters: per game, per code, and rejections that belong to no game."""

from __future__ import annotations

from hub.protocol import ErrorCode
from hub.protocol.messages import GameCounters
from hub.state.counters import CommandCounters


def test_counts_per_game_per_code_and_unattributed() -> None:
    counters = CommandCounters(["main", "side"])
    counters.accepted("main")
    counters.accepted("main", 2)
    counters.rejected("side", ErrorCode.NOT_YOUR_TURN)
    counters.rejected(None, ErrorCode.INVALID_JSON)
    counters.rejected("nope", ErrorCode.UNKNOWN_GAME)
    assert counters.per_game() == {
        "main": GameCounters(accepted=3, rejected=0),
        "side": GameCounters(accepted=0, rejected=1),
    }
    assert counters.total_accepted == 3
    assert counters.total_rejected == 3
    assert counters.by_code() == {
        ErrorCode.NOT_YOUR_TURN: 1,
        ErrorCode.INVALID_JSON: 1,
        ErrorCode.UNKNOWN_GAME: 1,
    }
