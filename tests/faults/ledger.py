"""The tally of the faults suite: what each category injected, tried, refused and lost.

Tests add to ``LEDGER`` as they go; ``tests/conftest.py`` prints one line per category at
the end of the run (under pytest-xdist each worker hands its tally over as :meth:`dump`
and the controller adds them up with :meth:`merge`). ``commands lost`` is always printed:
every test asserts it stays 0.
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

__all__ = ["LEDGER", "Category", "Ledger"]


class Category(StrEnum):
    KILL_9 = "kill -9"
    SIGSTOP = "SIGSTOP"
    DISK_FULL = "disk full"
    SLOW_CONSUMER = "slow consumer"
    TORN_TAIL = "torn tail"
    COMMAND_FUZZ = "command fuzz"
    PROTOCOL_FUZZ = "protocol fuzz"
    AUTH_ATTACKS = "auth attacks"


_COUNTS = (
    ("faults", "faults injected"),
    ("inputs", "inputs tried"),
    ("refused", "connections refused"),
    ("acked", "commands acked"),
    ("rejected", "commands rejected"),
    ("lost", "commands lost"),
)


@dataclass
class Ledger:
    """Thread-safe counters per category (tests run helper threads)."""

    _counts: dict[Category, Counter[str]] = field(default_factory=dict)
    _notes: dict[Category, list[str]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _checks: Counter[str] = field(default_factory=Counter)

    def checked(self, *, snapshots: int, retained: int) -> None:
        """One run of the invariants: stored snapshots compared with the journal replayed
        to them, and retained states compared with the whole journal replayed."""
        with self._lock:
            self._checks.update(journals=1, snapshots_checked=snapshots, retained=retained)

    def add(
        self,
        category: Category,
        *,
        faults: int = 0,
        inputs: int = 0,
        refused: int = 0,
        acked: int = 0,
        rejected: int = 0,
        lost: int = 0,
    ) -> None:
        given = {
            "faults": faults,
            "inputs": inputs,
            "refused": refused,
            "acked": acked,
            "rejected": rejected,
            "lost": lost,
        }
        with self._lock:
            counts = self._counts.setdefault(category, Counter())
            counts.update(given)  # zeros too: the category ran

    def note(self, category: Category, text: str) -> None:
        """A word on how the category ran (e.g. which disk-full mechanism)."""
        with self._lock:
            notes = self._notes.setdefault(category, [])
            if text not in notes:
                notes.append(text)

    def dump(self) -> dict[str, Any]:
        """The tally as plain data (what an xdist worker can send to the controller)."""
        with self._lock:
            return {
                "counts": {c.value: dict(n) for c, n in self._counts.items()},
                "notes": {c.value: list(n) for c, n in self._notes.items()},
                "checks": dict(self._checks),
            }

    def merge(self, dumped: dict[str, Any]) -> None:
        """Add another process's :meth:`dump` to this tally."""
        with self._lock:
            for name, counts in dumped["counts"].items():
                self._counts.setdefault(Category(name), Counter()).update(counts)
            for name, notes in dumped["notes"].items():
                kept = self._notes.setdefault(Category(name), [])
                kept.extend(note for note in notes if note not in kept)
            self._checks.update(dumped["checks"])

    def lines(self) -> list[str]:
        """One line per category that ran, in a fixed order."""
        out = []
        with self._lock:
            for category in Category:
                counts = self._counts.get(category)
                if counts is None:
                    continue
                parts = [
                    f"{label} {counts[key]}"
                    for key, label in _COUNTS
                    if counts[key] or key == "lost"
                ]
                notes = self._notes.get(category)
                suffix = f"  ({'; '.join(notes)})" if notes else ""
                out.append(f"{category.value:<14} " + ", ".join(parts) + suffix)
            if self._checks["journals"]:
                checks = self._checks
                out.append(
                    f"{'invariants':<14} journals {checks['journals']}, snapshots_checked "
                    f"{checks['snapshots_checked']}, retained states {checks['retained']}"
                )
        return out


LEDGER = Ledger()
