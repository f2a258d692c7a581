"""Player sessions and join codes: the stores on their own."""

from __future__ import annotations

import os
import stat
from datetime import timedelta
from pathlib import Path

import pytest

from hub.auth import AuthError, JoinCodeStore, SessionStore
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
