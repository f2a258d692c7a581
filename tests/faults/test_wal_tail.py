"""``hub.state.store.wal_tail`` on real SQLite WAL files (regression tests of the torn-tail
finding: SQLite drops a torn tail silently, so the hub could neither log it nor tell it
from damage that takes intact transactions with it)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from hub.state.store import wal_tail
from tests.faults.wal import Tear, current_frames, damage_frame, tear_last_frame, wal_of

ROWS = 30


@pytest.fixture
def db(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    """A WAL database like the journal, one transaction per row, never checkpointed."""
    connection = sqlite3.connect(tmp_path / "j.sqlite3", isolation_level=None)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=FULL")
    connection.execute("PRAGMA wal_autocheckpoint=0")
    connection.execute("CREATE TABLE t (n INTEGER PRIMARY KEY, text TEXT NOT NULL)")
    for n in range(ROWS):
        connection.execute("INSERT INTO t VALUES (?, ?)", (n, "x" * 200))
    yield connection
    connection.close()


def _wal(tmp_path: Path) -> Path:
    return wal_of(tmp_path / "j.sqlite3")


def _rows_after_recovery(wal: Path) -> int:
    """What SQLite itself recovers from this WAL (on a copy of the database)."""
    copy = wal.parent / "copy"
    copy.mkdir()
    (copy / "j.sqlite3").write_bytes((wal.parent / "j.sqlite3").read_bytes())
    wal_of(copy / "j.sqlite3").write_bytes(wal.read_bytes())
    connection = sqlite3.connect(copy / "j.sqlite3")
    try:
        return int(connection.execute("SELECT count(*) FROM t").fetchone()[0])
    finally:
        connection.close()


def test_an_intact_wal_has_no_tail(db: sqlite3.Connection, tmp_path: Path) -> None:
    assert wal_tail(_wal(tmp_path).read_bytes()) is None
    assert wal_tail(b"") is None


@pytest.mark.parametrize("tear", list(Tear))
def test_a_torn_last_frame_is_the_tail_sqlite_drops(
    db: sqlite3.Connection, tmp_path: Path, tear: Tear
) -> None:
    wal = _wal(tmp_path)
    last = tear_last_frame(wal, tear)
    tail = wal_tail(wal.read_bytes())
    assert tail is not None
    assert tail.frames == 1
    assert tail.size == (last.size // 2 if tear is Tear.TRUNCATED else last.size)
    assert tail.lost_transactions == 0
    assert tail.readable
    assert _rows_after_recovery(wal) == ROWS - 1  # SQLite agrees: the last row is gone


def test_damage_before_the_end_counts_the_transactions_lost_with_it(
    db: sqlite3.Connection, tmp_path: Path
) -> None:
    wal = _wal(tmp_path)
    frames = current_frames(wal)
    damaged = len(frames) // 2
    damage_frame(wal, frames[damaged])
    tail = wal_tail(wal.read_bytes())
    assert tail is not None
    later_commits = sum(frame.commit for frame in frames[damaged + 1 :])
    assert tail.lost_transactions == later_commits > 0
    assert _rows_after_recovery(wal) < ROWS - later_commits


def test_frames_of_an_older_generation_are_not_a_tail(
    db: sqlite3.Connection, tmp_path: Path
) -> None:
    # a checkpoint that restarts the WAL: the next write reuses the file from the start,
    # leaving the older frames (other salts) after the new ones
    db.execute("PRAGMA wal_checkpoint(RESTART)")
    db.execute("INSERT INTO t VALUES (?, ?)", (ROWS, "y"))
    wal = _wal(tmp_path)
    assert len(current_frames(wal)) < (wal.stat().st_size - 32) // current_frames(wal)[0].size
    assert wal_tail(wal.read_bytes()) is None


def test_a_torn_header_is_reported_unreadable(db: sqlite3.Connection, tmp_path: Path) -> None:
    data = _wal(tmp_path).read_bytes()
    assert wal_tail(data[:20]) is not None
    damaged = bytearray(data)
    damaged[24] ^= 0xFF  # the header's checksum
    tail = wal_tail(bytes(damaged))
    assert tail is not None
    assert not tail.readable
