"""The invariants every attack must leave intact, read from the journal on disk.

- versions are gapless: the journal holds versions 1..n of the game;
- every acknowledged command (a reply with ``ok: true``) is in it, at the version its reply
  named, with its request id;
- every snapshot the hub stored after the game's first one equals the journal replayed from
  the first snapshot up to that snapshot's version (``snapshots_checked`` counts them: the
  hub stores one every SNAPSHOT_EVERY versions and at a clean stop, so after a short run
  or a kill -9 there may be none to check, and the count says so);
- the retained ``R/games/{game}/state`` (what the hub published) equals the whole journal
  replayed.

The journal is opened read-only (as ``hub state`` and ``hub history`` do), so this works
while the hub runs and after it was killed.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hub.journals import POINTER_FILE, hub_journal
from hub.settings import load_settings
from hub.state.model import GameState
from hub.state.recovery import replay
from hub.state.store import JournalEntry, Store
from hub.state.view import snapshot
from tests.faults.hubs import HubAddress, operator_client
from tests.faults.ledger import LEDGER

__all__ = [
    "Journal",
    "assert_invariants",
    "comparable",
    "lost_commands",
    "read_journal",
    "retained_state",
]


@dataclass(frozen=True, slots=True)
class Journal:
    """One game's journal as it is on disk."""

    entries: tuple[JournalEntry, ...]
    replayed: GameState
    """The first snapshot with every entry applied."""
    recovered: GameState
    """What the hub restores on start: the latest snapshot with the entries after it."""
    epoch: int
    snapshots_checked: int
    """Stored snapshots (after the first) compared with the journal replayed to them."""

    @property
    def versions(self) -> list[int]:
        return [entry.version for entry in self.entries]

    @property
    def request_ids(self) -> dict[int, str | None]:
        return {entry.version: entry.command.request_id for entry in self.entries}

    def snapshot(self) -> dict[str, Any]:
        """The snapshot the hub publishes for this state (no presence known)."""
        view = snapshot(self.replayed, epoch=self.epoch, online={})
        data: dict[str, Any] = view.to_wire()
        return data


def _stored_snapshots(path: Path, game: str) -> list[GameState]:
    """Every snapshot of ``game`` the hub stored, oldest first."""
    uri = f"{path.absolute().as_uri()}?mode=ro"
    db = sqlite3.connect(uri, uri=True)
    try:
        rows = db.execute(
            "SELECT state FROM snapshots WHERE game = ? ORDER BY version", (game,)
        ).fetchall()
    finally:
        db.close()
    assert rows, f"no snapshot of {game} in {path}"
    return [GameState.model_validate_json(row[0]) for row in rows]


def _check_snapshots(
    snapshots: list[GameState], entries: tuple[JournalEntry, ...]
) -> tuple[GameState, int]:
    """Replay the journal from the first snapshot, comparing each later stored snapshot
    with the replay at its version; returns (the whole journal replayed, snapshots checked)."""
    state, checked = snapshots[0], 0
    pending = sorted((e for e in entries if e.version > state.version), key=lambda e: e.version)
    for stored in snapshots[1:]:
        upto = [e for e in pending if e.version <= stored.version]
        pending = pending[len(upto) :]
        state = replay(state, upto)
        assert state == stored, (
            f"the snapshot stored at version {stored.version} is not the journal replayed to it"
        )
        checked += 1
    return replay(state, pending), checked


def _read_replicated(data_dir: Path, game: str) -> Journal:
    """The journal of a hub serving on a NATS cluster (its data dir's ``journal.json``
    points to the JetStream stream), read as ``hub history --data-dir`` does. The stream
    keeps only the latest snapshot per game in its index, so none is checked against the
    replay: ``replayed`` is the latest snapshot with the entries after it."""
    settings = load_settings(None, data_dir=data_dir)

    async def read() -> tuple[tuple[JournalEntry, ...], GameState | None, int]:
        async with hub_journal(settings, read_only=True) as journal:
            return (
                tuple(await journal.entries(game)),
                await journal.latest_snapshot(game),
                await journal.epoch(),
            )

    entries, latest, epoch = asyncio.run(asyncio.wait_for(read(), 60))
    assert latest is not None, f"no game {game} in the journal {data_dir / POINTER_FILE} names"
    recovered = replay(latest, [e for e in entries if e.version > latest.version])
    return Journal(entries, recovered, recovered, epoch, snapshots_checked=0)


def read_journal(data_dir: Path, game: str = "main") -> Journal:
    """The journal of the hub whose data dir is ``data_dir`` (SQLite, or JetStream)."""
    if (data_dir / POINTER_FILE).exists():
        return _read_replicated(data_dir, game)
    with Store(data_dir, read_only=True) as store:
        entries = tuple(store.entries(game))
        latest = store.latest_snapshot(game)
        epoch = store.epoch()
        path = store.path
    assert latest is not None, f"no game {game} in {data_dir}"
    replayed, checked = _check_snapshots(_stored_snapshots(path, game), entries)
    recovered = replay(latest, [e for e in entries if e.version > latest.version])
    return Journal(
        entries=entries,
        replayed=replayed,
        recovered=recovered,
        epoch=epoch,
        snapshots_checked=checked,
    )


def lost_commands(journal: Journal, acked: Mapping[int, str]) -> dict[int, str]:
    """Acknowledged commands (version -> request id) the journal does not hold."""
    stored = journal.request_ids
    return {v: rid for v, rid in acked.items() if stored.get(v) != rid}


def comparable(snapshot: Mapping[str, Any]) -> dict[str, Any]:
    """A snapshot without what presence changes (``connected``, ``updated_at``)."""
    data = {k: v for k, v in snapshot.items() if k != "updated_at"}
    data["players"] = [
        {k: v for k, v in player.items() if k != "connected"} for player in snapshot["players"]
    ]
    return data


def retained_state(address: HubAddress, game: str = "main", *, who: str = "inv") -> Any:
    """The retained snapshot, as a client connecting now receives it."""
    with operator_client(address, f"{who}-probe") as probe:
        return probe.state(game)


def assert_invariants(
    data_dir: Path,
    acked: Mapping[int, str],
    *,
    retained: Mapping[str, Any] | None = None,
    game: str = "main",
) -> Journal:
    """Check the invariants; ``retained`` is the snapshot read from the broker (the game
    must be quiet meanwhile). Returns the journal read."""
    journal = read_journal(data_dir, game)
    versions = journal.versions
    assert versions == list(range(1, len(versions) + 1)), f"versions have gaps: {versions[-20:]}"
    lost = lost_commands(journal, acked)
    assert lost == {}, f"{len(lost)} acknowledged commands are not in the journal: {lost}"
    # read_journal compared every stored snapshot with the replay (journal.snapshots_checked)
    if retained is not None:
        assert comparable(retained) == comparable(journal.snapshot()), (
            "the retained state is not the journal replayed"
        )
    LEDGER.checked(snapshots=journal.snapshots_checked, retained=int(retained is not None))
    return journal
