"""The SQLite journal, with real files under tmp_path: what is SQLite's own. The journal
contract every implementation keeps is in test_journal_contract.py."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from hub.protocol import Command, End, Join, Kick, Start, Undo
from hub.state.errors import JournalCorruptError, StorageUnavailableError
from hub.state.model import Actor, GameState, Role
from hub.state.reducer import Accepted, apply
from hub.state.store import JournalEntry, Store

REPO = Path(__file__).resolve().parents[2]
T0 = datetime(2026, 11, 24, 8, 0, tzinfo=UTC)
P1 = Actor("p1", Role.PLAYER)
P2 = Actor("p2", Role.PLAYER)
OP = Actor("op", Role.OPERATOR)
SCRIPT: list[tuple[Command, Actor]] = [
    (Join(type="join", name="Alice", request_id="r1"), P1),
    (Join(type="join", name="Zoë 😀", seat=2, expected_version=1), P2),
    (Start(type="start", max_rounds=2), OP),
    (End(type="end_turn", points=3), P1),
    (End(type="end_turn", points=0), P2),
    (Undo(type="undo"), OP),
    (End(type="end_turn", points=7), P2),
    (Kick(type="kick", seat=1), OP),
]


def play(
    game: str = "main", script: list[tuple[Command, Actor]] = SCRIPT
) -> tuple[GameState, list[JournalEntry], GameState]:
    """Run ``script`` through the reducer: (initial state, journal entries, final state)."""
    initial = GameState.new(game, max_rounds=5, now=T0)
    state, entries = initial, []
    for index, (command, actor) in enumerate(script, start=1):
        at = T0 + timedelta(seconds=index, milliseconds=index * 7)
        outcome = apply(state, command, actor=actor, now=at)
        assert isinstance(outcome, Accepted), outcome
        state = outcome.state
        entries.append(
            JournalEntry(
                game=game,
                version=state.version,
                epoch=2,
                at=at,
                actor=actor,
                command=command,
                event=outcome.event,
            )
        )
    return initial, entries, state


# --- round trip -------------------------------------------------------------------------


def test_empty_store(tmp_path: Path) -> None:
    with Store(tmp_path / "data") as store:
        assert store.epoch() == 0
        assert store.entries("main") == []
        assert store.latest_snapshot("main") is None
        assert store.count("main") == 0
        assert store.games() == []
    assert (tmp_path / "data" / Store.FILENAME).is_file()


# --- readers and writers ----------------------------------------------------------------


def test_reader_while_the_writer_is_open(tmp_path: Path) -> None:
    initial, entries, _ = play()
    with Store(tmp_path) as writer:
        writer.next_epoch()
        writer.append(entries[:2], [initial])
        with Store(tmp_path, read_only=True) as reader:
            assert reader.epoch() == 1
            assert reader.entries("main") == entries[:2]
            writer.append(entries[2:])
            assert reader.entries("main") == entries
            assert reader.latest_snapshot("main") == initial
            with pytest.raises(StorageUnavailableError):
                reader.append(entries[:1])
            with pytest.raises(StorageUnavailableError):
                reader.next_epoch()
        writer.append([], [initial])  # the writer is unaffected by the reader
    with Store(tmp_path) as store:
        assert store.entries("main") == entries
        assert store.epoch() == 1


def test_read_only_without_a_journal(tmp_path: Path) -> None:
    with (
        pytest.raises(StorageUnavailableError, match="no journal"),
        Store(tmp_path / "none", read_only=True),
    ):
        pass
    assert not (tmp_path / "none").exists()


@pytest.mark.parametrize("name", ["a#b", "a?b", "a%20b", "a b", "é"])
def test_read_only_in_a_directory_with_uri_characters(tmp_path: Path, name: str) -> None:
    data = tmp_path / name
    with Store(data) as store:
        store.next_epoch()
    with Store(data, read_only=True) as reader:
        assert reader.epoch() == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]  # no stray database


def test_store_must_be_open(tmp_path: Path) -> None:
    store = Store(tmp_path)
    with pytest.raises(StorageUnavailableError, match="not open"):
        store.entries("main")
    with store:
        pass
    with pytest.raises(StorageUnavailableError, match="not open"):
        store.epoch()


# --- storage failures (tests run as root: permissions would not stop a write) ----------


def test_data_dir_under_a_regular_file(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a directory")
    with (
        pytest.raises(StorageUnavailableError, match="cannot open"),
        Store(tmp_path / "file" / "data"),
    ):
        pass


def test_journal_path_is_a_directory(tmp_path: Path) -> None:
    (tmp_path / Store.FILENAME).mkdir()
    with pytest.raises(StorageUnavailableError), Store(tmp_path):
        pass


def test_journal_is_not_a_database(tmp_path: Path) -> None:
    (tmp_path / Store.FILENAME).write_bytes(b"\x00garbage" * 512)
    with pytest.raises(StorageUnavailableError), Store(tmp_path):
        pass


_DISK_FULL_CHILD = textwrap.dedent(
    """
    import resource, signal, sys
    from pathlib import Path
    from hub.state.errors import StorageUnavailableError
    from hub.state.store import Store
    from tests.state.test_store import play

    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    data = Path(sys.argv[1])
    _, entries, _ = play()
    with Store(data) as store:
        store.append(entries[:2])
        biggest = max(p.stat().st_size for p in data.iterdir())
        soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
        resource.setrlimit(resource.RLIMIT_FSIZE, (biggest, hard))  # the disk is full
        try:
            store.append(entries[2:])
        except StorageUnavailableError as exc:
            print("refused:", exc)
        else:
            print("stored")
        print("count:", store.count("main"))
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    """
)


def test_full_disk_refuses_the_whole_batch(tmp_path: Path) -> None:
    """A write that really fails, even for root: the file size limit (RLIMIT_FSIZE)."""
    done = subprocess.run(
        [sys.executable, "-c", _DISK_FULL_CHILD, str(tmp_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("refused: cannot write the journal"), done.stdout
    cause = lines[0].rsplit(": ", 1)[-1]  # SQLite's own reason, not a failed rollback
    assert cause in ("disk I/O error", "database or disk is full"), lines[0]
    assert lines[1] == "count: 2"
    _, entries, final = play()
    with Store(tmp_path) as store:
        assert store.entries("main") == entries[:2]
        store.append(entries[2:], [final])  # with space again, the same batch goes in
        assert store.entries("main") == entries


# --- corrupt journals -------------------------------------------------------------------


def _tamper(tmp_path: Path, sql: str) -> None:
    db = sqlite3.connect(tmp_path / Store.FILENAME)
    with db:
        db.execute(sql)
    db.close()


@pytest.mark.parametrize(
    "sql",
    [
        'UPDATE journal SET command = \'{"type": "fly"}\' WHERE version = 2',
        "UPDATE journal SET command = 'not json' WHERE version = 2",
        "UPDATE journal SET event = '{}' WHERE version = 2",
        "UPDATE journal SET role = 'king' WHERE version = 2",
        "UPDATE journal SET at = 'yesterday' WHERE version = 2",
    ],
)
def test_unreadable_entry_is_corrupt(tmp_path: Path, sql: str) -> None:
    _, entries, _ = play()
    with Store(tmp_path) as store:
        store.append(entries)
    _tamper(tmp_path, sql)
    with Store(tmp_path) as store:
        assert store.entries("main", limit=1) == entries[:1]
        with pytest.raises(JournalCorruptError, match="main/2"):
            store.entries("main")


def test_unreadable_snapshot_is_corrupt(tmp_path: Path) -> None:
    initial, _, _ = play()
    with Store(tmp_path) as store:
        store.append([], [initial])
    _tamper(tmp_path, "UPDATE snapshots SET state = '{\"game\": 1}'")
    with Store(tmp_path) as store, pytest.raises(JournalCorruptError, match="main"):
        store.latest_snapshot("main")
