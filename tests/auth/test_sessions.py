"""Player sessions and join codes: the stores on their own, each test over both backends
(a data dir's files, a NATS node's key-value buckets) unless it is about SQLite."""

from __future__ import annotations

import concurrent.futures
import contextlib
import multiprocessing
import os
import sqlite3
import stat
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest

from hub.auth import (
    AuthError,
    EndReason,
    JoinCodeStore,
    SessionEnded,
    SessionLimitError,
    Sessions,
    SessionStore,
)
from hub.clock import utc_now
from hub.protocol import valid_client_id
from tests.support.stores import Backend, backend, nats_node

__all__ = ["backend", "nats_node"]  # the fixtures


def test_a_session_authenticates_with_its_token_until_it_expires(backend: Backend) -> None:
    now = utc_now()
    with backend.sessions(ttl=60) as sessions:
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
    assert new.token.encode() not in backend.stored_bytes()
    if backend.name == "file":
        assert stat.S_IMODE(os.stat(tmp_path_of(backend, SessionStore.FILENAME)).st_mode) == 0o600


def tmp_path_of(backend: Backend, name: str) -> Path:
    return backend.data_dir / name


def test_sessions_survive_a_restart_and_are_distinct(backend: Backend) -> None:
    with backend.sessions() as sessions:
        first, second = sessions.create("main", "A"), sessions.create("main", "A")
    assert first.session.client_id != second.session.client_id
    assert first.token != second.token
    with backend.sessions() as sessions:
        assert sessions.authenticate(first.session.client_id, first.token) is not None


def test_a_session_made_elsewhere_authenticates_at_once(backend: Backend) -> None:
    """A phone's session minted by one node's bridge logs in through another at once."""
    with backend.sessions() as here, backend.sessions() as there:
        for _ in range(20):
            new = there.create("main", "A")
            assert here.authenticate(new.session.client_id, new.token) == new.session


def test_join_codes_are_digits_kept_until_rotated(backend: Backend) -> None:
    with backend.join_codes(digits=4) as codes, backend.join_codes() as elsewhere:
        code = codes.code("main")
        assert len(code) == 4
        assert code.isdigit()
        assert elsewhere.code("main") == code
        assert codes.check("main", code)
        assert not codes.check("other", code)
        rotated = codes.rotate("main")
        assert rotated != code
        assert codes.check("main", rotated)
        assert elsewhere.check("main", rotated)
        assert not codes.check("main", code)
        assert not elsewhere.check("main", code)
    if backend.name == "file":
        path = tmp_path_of(backend, JoinCodeStore.FILENAME)
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    with pytest.raises(AuthError), backend.join_codes(digits=3):
        pass


def test_wrong_join_codes_make_a_rotation_due_once(backend: Backend) -> None:
    with backend.join_codes(rotate_after=3) as codes:
        code = codes.code("main")
        wrong = f"{(int(code) + 1) % 10**6:06d}"
        for _ in range(2):
            assert not codes.check("main", wrong)
        assert not codes.take_rotation_due("main")
        assert not codes.check("main", wrong)
        assert codes.take_rotation_due("main")
        assert not codes.take_rotation_due("main")


def test_a_revoked_session_is_refused_and_its_end_told_once(backend: Backend) -> None:
    now = utc_now()
    heard: list[SessionEnded] = []
    with backend.sessions(ttl=60) as sessions:
        sessions.on_end(heard.append)
        new = sessions.create("main", "Alice", address="10.0.0.7", now=now)
        client_id = new.session.client_id
        wait_for(lambda: [s.client_id for s in sessions.live(now=now)] == [client_id])
        assert sessions.live(game="other", now=now) == []
        assert sessions.revoke(client_id, now=now) == new.session
        assert heard == [SessionEnded(client_id, EndReason.REVOKED)]
        assert sessions.authenticate(client_id, new.token, now=now) is None
        assert sessions.revoke(client_id, now=now) is None
        assert sessions.live(now=now) == []
        assert sessions.sweep(now=now) == []
        assert len(heard) == 1


def test_the_sweep_tells_of_expiry_and_of_revocations_elsewhere(backend: Backend) -> None:
    now = utc_now()
    heard: list[SessionEnded] = []
    with backend.sessions(ttl=60) as hub, backend.sessions(ttl=3600) as cli:
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


def test_live_sessions_are_capped_per_game_and_per_address(backend: Backend) -> None:
    now = utc_now()
    with backend.sessions(ttl=60, max_per_game=3, max_per_address=2) as sessions:
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


def test_the_caps_hold_for_processes_creating_at_once(backend: Backend) -> None:
    """Four stores (on NATS: four connections, as four bridges) create sessions for one
    game at once: never more than the cap are live."""
    cap, tries = 5, 6
    with contextlib.ExitStack() as stack:
        stores = [stack.enter_context(backend.sessions(max_per_game=cap)) for _ in range(4)]
        start = threading.Barrier(len(stores))

        def create_all(store: Sessions) -> int:
            start.wait()
            made = 0
            for k in range(tries):
                try:
                    store.create("main", f"P{k}", address=f"10.0.0.{k}")
                except SessionLimitError:
                    continue
                made += 1
            return made

        with concurrent.futures.ThreadPoolExecutor(len(stores)) as pool:
            made = sum(pool.map(create_all, stores))
        assert made == cap
        assert stores[0].active() <= cap


def wait_for(condition: Callable[[], bool], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


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
