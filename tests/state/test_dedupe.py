"""The dedupe window in memory: per client, the last N replies, oldest out first."""

from __future__ import annotations

from hub.protocol import Reply
from hub.state.dedupe import DedupeWindow
from hub.state.journal import Remembered


def _reply(n: int) -> Reply:
    return Reply.accepted(f"r{n}", n)


def test_the_last_n_per_client_are_kept() -> None:
    window = DedupeWindow(size=3)
    for n in range(1, 6):
        window.put("alice", f"r{n}", _reply(n))
    window.put("bob", "r1", _reply(99))
    assert [window.get("alice", f"r{n}") for n in range(1, 6)] == [
        None,
        None,
        _reply(3),
        _reply(4),
        _reply(5),
    ]
    assert window.get("bob", "r1") == _reply(99)  # another client's r1 is its own
    assert window.get("carol", "r1") is None
    assert len(window) == 4


def test_rebuilt_from_the_journal_in_order_and_forgetting() -> None:
    stored = [Remembered("alice", f"r{n}", _reply(n)) for n in range(1, 5)]
    window = DedupeWindow(size=2, remembered=stored)
    assert window.get("alice", "r2") is None
    assert window.get("alice", "r4") == _reply(4)
    window.forget("alice", "r4")
    window.forget("nobody", "r4")
    assert window.get("alice", "r4") is None
    assert window.get("alice", "r3") == _reply(3)
