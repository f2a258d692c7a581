"""GameState -> the published Snapshot (pure)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from hub.protocol import PlayerView, Snapshot
from hub.state.model import GameState

__all__ = ["snapshot"]


def snapshot(
    state: GameState,
    *,
    epoch: int,
    online: Mapping[str, bool],
    updated_at: datetime | None = None,
) -> Snapshot:
    """The retained snapshot; ``online`` maps client ids to their presence."""
    table = state.table
    views = []
    for seat, holder in ((1, table.seats[0]), (2, table.seats[1])):
        views.append(
            PlayerView(
                id=seat,
                name=holder.name if holder else None,
                client_id=holder.client_id if holder else None,
                connected=bool(holder and online.get(holder.client_id, False)),
                score=table.scores[seat - 1],
            )
        )
    return Snapshot(
        game=state.game,
        version=state.version,
        epoch=epoch,
        status=table.status,
        p1_name=views[0].name,
        p2_name=views[1].name,
        current_round=table.current_round,
        max_rounds=table.max_rounds,
        current_player_id=table.current_player_id,
        players=(views[0], views[1]),
        winner_id=table.winner_id,
        updated_at=updated_at or state.updated_at,
        turn_seconds=table.turn_seconds,
        turn_deadline=table.turn_deadline,
        turn_remaining_ms=table.turn_remaining_ms,
    )
