"""The user store over both backends (a data dir's file, a NATS node's key-value bucket)."""

from __future__ import annotations

import pytest

from hub.auth import AuthError, Role, UserExistsError, UserNotFoundError
from tests.support.stores import Backend, backend, nats_node

__all__ = ["backend", "nats_node"]  # the fixtures

PASSWORD = "pw-0123456789"


def test_a_user_added_in_one_process_logs_in_through_another(backend: Backend) -> None:
    with backend.users() as cli, backend.users() as hub:
        assert hub.login("tv") is None
        added = cli.add("tv", Role.DISPLAY, PASSWORD)
        assert PASSWORD not in added.password_hash
        assert hub.authenticate("tv", PASSWORD) == added  # at once, in the other process
        assert hub.authenticate("tv", PASSWORD + "x") is None
        assert hub.get("tv") == added
        assert hub.has_role(Role.DISPLAY)
        assert [u.name for u in hub.list()] == ["tv"]
        with pytest.raises(UserExistsError):
            hub.add("tv", Role.OPERATOR, PASSWORD)
        cli.remove("tv")
        with pytest.raises(UserNotFoundError):
            hub.remove("tv")
        assert cli.authenticate("tv", PASSWORD) is None
    assert PASSWORD.encode() not in backend.stored_bytes()


def test_bad_users_are_refused(backend: Backend) -> None:
    with backend.users() as users:
        for name, role, password in (
            ("a b", Role.PLAYER, PASSWORD),
            ("service", Role.PLAYER, PASSWORD),
            ("x", Role.SERVICE, PASSWORD),
            ("short", Role.PLAYER, "1234567"),
        ):
            with pytest.raises(AuthError):
                users.add(name, role, password)
        assert users.list() == []
