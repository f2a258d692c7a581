"""The last known game on disk, so a rebooted Pi with the hub unreachable still shows it.

One small JSON file, replaced atomically (write a temporary file, fsync, rename), written
only when what it holds changes. A missing, unreadable or foreign cache is logged and
treated as empty: the cache never stops the node.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from hub.protocol import DecodeError, Snapshot, decode_model

__all__ = ["CachedGame", "SnapshotCache"]

_LOGGER = logging.getLogger(__name__)
_MAX_BYTES = 256 * 1024


class _CacheFile(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    snapshot: Snapshot
    join_code: str | None = None
    saved_at: datetime


@dataclass(frozen=True, slots=True)
class CachedGame:
    snapshot: Snapshot
    join_code: str | None
    saved_at: datetime


class SnapshotCache:
    """``cache.load(game)`` at start; ``cache.save(snapshot, join_code)`` on every change."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._saved: tuple[Snapshot, str | None] | None = None

    def load(self, game: str) -> CachedGame | None:
        """The cached game, or None (no cache, another game's, or unreadable)."""
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            _LOGGER.warning("cannot read the cache %s: %s", self.path, exc)
            return None
        try:
            data = decode_model(raw, _CacheFile, max_bytes=_MAX_BYTES)
        except DecodeError as exc:
            _LOGGER.warning("ignoring the unreadable cache %s: %s", self.path, exc.message)
            return None
        if data.snapshot.game != game:
            _LOGGER.info("the cache %s holds game %r, not %r", self.path, data.snapshot.game, game)
            return None
        self._saved = (data.snapshot, data.join_code)
        return CachedGame(data.snapshot, data.join_code, data.saved_at)

    def save(self, snapshot: Snapshot, join_code: str | None) -> bool:
        """Write the cache if it changed; False (logged) if the disk refused."""
        if self._saved == (snapshot, join_code):
            return True
        data = _CacheFile(snapshot=snapshot, join_code=join_code, saved_at=datetime.now(UTC))
        text = data.model_dump_json(by_alias=True)
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with tmp.open("w", encoding="utf-8") as out:
                out.write(text)
                out.flush()
                os.fsync(out.fileno())
            tmp.replace(self.path)
        except OSError as exc:
            _LOGGER.warning("cannot write the cache %s: %s", self.path, exc)
            return False
        self._saved = (snapshot, join_code)
        return True
