"""Damage an SQLite WAL file on disk the way a torn write or a lost write would.

Reads only the frame layout (sqlite.org/fileformat2.html#walformat), independently of
``hub.state.store.wal_tail``: header 32 bytes (page size at 8, salts at 16 and 20), then
frames of a 24-byte header (page number, database size for a commit frame else 0, salts,
checksums) and one page.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

__all__ = ["Frame", "Tear", "current_frames", "damage_frame", "tear_last_frame", "wal_of"]

_HEADER = 32
_FRAME_HEADER = 24


class Tear(StrEnum):
    TRUNCATED = "truncated"
    """The last frame was cut short: the file ends halfway through it."""
    GARBLED = "garbled"
    """The last frame is there, but part of its page is not what was written."""


@dataclass(frozen=True, slots=True)
class Frame:
    offset: int
    size: int
    commit: bool


def wal_of(journal: Path) -> Path:
    return journal.with_name(journal.name + "-wal")


def current_frames(wal: Path) -> list[Frame]:
    """The frames of the WAL's current generation (the header's salts), in order."""
    data = wal.read_bytes()
    page_size = struct.unpack(">I", data[8:12])[0]
    salts = data[16:24]
    size = _FRAME_HEADER + page_size
    frames = []
    offset = _HEADER
    while offset + size <= len(data) and data[offset + 8 : offset + 16] == salts:
        commit = struct.unpack(">I", data[offset + 4 : offset + 8])[0] != 0
        frames.append(Frame(offset, size, commit))
        offset += size
    return frames


def tear_last_frame(wal: Path, tear: Tear) -> Frame:
    """Tear the last frame of the current generation; returns it (a commit frame)."""
    frames = current_frames(wal)
    assert frames, f"{wal} holds no frames"
    last = frames[-1]
    assert last.commit, "the last frame of the WAL is not a commit frame"
    if tear is Tear.TRUNCATED:
        with wal.open("r+b") as file:
            file.truncate(last.offset + last.size // 2)
    else:
        damage_frame(wal, last)
    return last


def damage_frame(wal: Path, frame: Frame) -> None:
    """Flip 16 bytes in the middle of the frame's page (a write that was lost or mangled)."""
    with wal.open("r+b") as file:
        file.seek(frame.offset + frame.size // 2)
        chunk = file.read(16)
        file.seek(frame.offset + frame.size // 2)
        file.write(bytes(b ^ 0xFF for b in chunk))
