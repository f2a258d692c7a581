"""Player sessions and join codes: the stores on their own."""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import os
import sqlite3
import stat
import time
from datetime import timedelta
from pathlib import Path

import pytest

from hub.auth import (
    AuthError,
    EndReason,
    JoinCodeStore,
    SessionEnded,
    SessionLimitError,
    SessionStore,
)
from hub.clock import utc_now
from hub.protocol import valid_client_id


def test_a_session_authenticates_with_its_token_until_it_expires(tmp_path: Path) -> None:
    now = utc_now()
    with SessionStore(tmp_path, ttl=60) as sessions:
        new = sessions.create("main", "Alice", now=now)
        player = new.session
        assert valid_client_id(player.client_id)
        assert player.client_id.startswith("p-")
        assert player.expires_at == now + timedelta(seconds=60)
        assert sessions.authenticate(player.client_id, new.token, now=now) == player
        assert sessions.authenticate(player.client_id, new.token + "x", now=now) is None
        assert sessions.authenticate("p-other", new.token, now=now) is None
        later = now + timedelta(seconds=61)
        assert sessions.authenticate(player.client_id, new.token, now=later) is None
        assert sessions.active(now=now) == 1
        assert sessions.active(now=later) == 0
    raw = (tmp_path / SessionStore.FILENAME).read_bytes()
    assert new.token.encode() not in raw
    assert stat.S_IMODE(os.stat(tmp_path / SessionStore.FILENAME).st_mode) == 0o600


def test_sessions_survive_a_restart_and_are_distinct(tmp_path: Path) -> None:
    with SessionStore(tmp_path) as sessions:
        first, second = sessions.create("main", "A"), sessions.create("main", "A")
    assert first.session.client_id != second.session.client_id
    assert first.token != second.token
    with SessionStore(tmp_path) as sessions:
        assert sessions.authenticate(first.session.client_id, first.token) is not None


def test_join_codes_are_digits_kept_until_rotated(tmp_path: Path) -> None:
    codes = JoinCodeStore(tmp_path, digits=4)
    code = codes.code("main")
    assert len(code) == 4
    assert code.isdigit()
    assert JoinCodeStore(tmp_path).code("main") == code
    assert codes.check("main", code)
    assert not codes.check("other", code)
    rotated = codes.rotate("main")
    assert rotated != code
    assert codes.check("main", rotated)
    assert not codes.check("main", code)
    assert stat.S_IMODE(os.stat(tmp_path / JoinCodeStore.FILENAME).st_mode) == 0o600
    with pytest.raises(AuthError):
        JoinCodeStore(tmp_path, digits=3)


def test_a_revoked_session_is_refused_and_its_end_told_once(tmp_path: Path) -> None:
    now = utc_now()
    heard: list[SessionEnded] = []
    with SessionStore(tmp_path, ttl=60) as sessions:
        sessions.on_end(heard.append)
        new = sessions.create("main", "Alice", address="10.0.0.7", now=now)
        client_id = new.session.client_id
        assert [s.client_id for s in sessions.live(now=now)] == [client_id]
        assert sessions.live(game="other", now=now) == []
        assert sessions.revoke(client_id, now=now) == new.session
        assert heard == [SessionEnded(client_id, EndReason.REVOKED)]
        assert sessions.authenticate(client_id, new.token, now=now) is None
        assert sessions.revoke(client_id, now=now) is None
        assert sessions.live(now=now) == []
        assert sessions.sweep(now=now) == []
        assert len(heard) == 1


def test_the_sweep_tells_of_expiry_and_of_revocations_elsewhere(tmp_path: Path) -> None:
    now = utc_now()
    heard: list[SessionEnded] = []
    with SessionStore(tmp_path, ttl=60) as hub, SessionStore(tmp_path, ttl=3600) as cli:
        hub.on_end(heard.append)
        short = hub.create("main", "Short", now=now)
        other = cli.create("main", "Other", now=now)
        assert hub.authenticate(other.session.client_id, other.token, now=now) is not None
        assert hub.sweep(now=now) == []
        cli.revoke(other.session.client_id, now=now)  # another process: heard at the sweep
        later = now + timedelta(seconds=61)
        assert sorted(hub.sweep(now=later), key=lambda e: e.reason) == [
            SessionEnded(short.session.client_id, EndReason.EXPIRED),
            SessionEnded(other.session.client_id, EndReason.REVOKED),
        ]
        assert hub.sweep(now=later) == []  # told once
        assert len(heard) == 2


def test_live_sessions_are_capped_per_game_and_per_address(tmp_path: Path) -> None:
    now = utc_now()
    with SessionStore(tmp_path, ttl=60, max_per_game=3, max_per_address=2) as sessions:
        first = sessions.create("main", "A", address="10.0.0.1", now=now)
        sessions.create("main", "B", address="10.0.0.1", now=now)
        with pytest.raises(SessionLimitError, match="this address"):
            sessions.create("main", "C", address="10.0.0.1", now=now)
        sessions.create("other", "C", address="10.0.0.2", now=now)
        sessions.create("main", "D", address="10.0.0.2", now=now)
        with pytest.raises(SessionLimitError, match="game 'main'"):
            sessions.create("main", "E", address="10.0.0.3", now=now)
        sessions.revoke(first.session.client_id, now=now)  # revoked: no longer counted
        sessions.create("main", "E", address="10.0.0.3", now=now)
        later = now + timedelta(seconds=61)  # expired: no longer counted
        for name in "FGH":
            sessions.create("main", name, address="10.0.0.4" if name != "H" else "x", now=later)


def test_a_store_of_the_first_schema_is_upgraded(tmp_path: Path) -> None:
    db = sqlite3.connect(tmp_path / SessionStore.FILENAME)
    db.executescript(
        "CREATE TABLE sessions (client_id TEXT PRIMARY KEY, token_sha256 BLOB NOT NULL,"
        " name TEXT NOT NULL, game TEXT NOT NULL, created_at REAL NOT NULL,"
        " expires_at REAL NOT NULL) WITHOUT ROWID;"
    )
    db.close()
    with SessionStore(tmp_path) as sessions:
        new = sessions.create("main", "A", address="10.0.0.1")
        assert sessions.authenticate(new.session.client_id, new.token) == new.session


def _open_and_count(directory: str, start: float) -> int:
    """In a process of its own: open the store at ``start`` (wall clock) and count."""
    while time.time() < start:
        time.sleep(0.001)
    with SessionStore(Path(directory)) as sessions:
        return sessions.active()


@pytest.mark.parametrize("first_schema", [False, True], ids=["new-file", "first-schema"])
def test_processes_opening_one_store_at_once_all_succeed(
    tmp_path: Path, first_schema: bool
) -> None:
    """The hub and web bridges start together on one data dir: each creates or upgrades
    the table, and none may fail on another's half-done upgrade ('duplicate column')."""
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(6, mp_context=context) as pool:
        list(pool.map(_open_and_count, [str(tmp_path)] * 6, [0.0] * 6))  # start the workers
        for attempt in range(5):
            directory = tmp_path / f"try{attempt}"
            directory.mkdir()
            if first_schema:
                db = sqlite3.connect(directory / SessionStore.FILENAME)
                db.execute(
                    "CREATE TABLE sessions (client_id TEXT PRIMARY KEY,"
                    " token_sha256 BLOB NOT NULL, name TEXT NOT NULL, game TEXT NOT NULL,"
                    " created_at REAL NOT NULL, expires_at REAL NOT NULL) WITHOUT ROWID"
                )
                db.close()
            start = time.time() + 0.3
            counts = list(pool.map(_open_and_count, [str(directory)] * 6, [start] * 6))
            assert counts == [0] * 6
