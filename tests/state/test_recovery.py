"""replay(): a snapshot plus the journal after it, through the same reducer."""

from __future__ import annotations

import dataclasses

import pytest

from hub.protocol import End, Join
from hub.state.errors import JournalCorruptError
from hub.state.model import Actor, Role
from hub.state.recovery import replay
from tests.state.test_store import play


def test_replay_of_nothing_is_the_base() -> None:
    initial, _, _ = play()
    assert replay(initial, []) is initial


def test_replay_rebuilds_every_version() -> None:
    initial, entries, final = play()
    for cut in range(len(entries) + 1):
        middle = replay(initial, entries[:cut])
        assert middle.version == cut
        assert replay(middle, entries[cut:]) == final


def test_replay_uses_the_recorded_time_and_actor() -> None:
    initial, entries, _ = play()
    state = replay(initial, entries[:1])
    assert state.updated_at == entries[0].at
    holder = state.table.seats[0]
    assert holder is not None
    assert holder.client_id == entries[0].actor.client_id


@pytest.mark.parametrize("skip", [0, 2, 5])
def test_a_gap_is_corrupt(skip: int) -> None:
    initial, entries, _ = play()
    with pytest.raises(JournalCorruptError, match="jumps"):
        replay(initial, entries[:skip] + entries[skip + 1 :])


def test_a_repeated_entry_is_corrupt() -> None:
    initial, entries, _ = play()
    with pytest.raises(JournalCorruptError, match="jumps"):
        replay(initial, [entries[0], entries[0]])


def test_replay_from_a_later_base_must_skip_what_it_holds() -> None:
    initial, entries, _ = play()
    middle = replay(initial, entries[:3])
    with pytest.raises(JournalCorruptError, match="from version 3 to 1"):
        replay(middle, entries)


@pytest.mark.parametrize(
    "change",
    [
        {"actor": Actor("p1", Role.DISPLAY)},  # a display may not join: forbidden
        {"actor": Actor("p9", Role.PLAYER), "command": End(type="end_turn")},  # wrong_status
        {"command": Join(type="join", name="A", expected_version=7)},  # version_conflict
    ],
)
def test_an_entry_that_no_longer_applies_is_corrupt(change: dict[str, object]) -> None:
    initial, entries, _ = play()
    bad = dataclasses.replace(entries[0], **change)  # type: ignore[arg-type]
    with pytest.raises(JournalCorruptError, match="no longer applies"):
        replay(initial, [bad, *entries[1:]])
