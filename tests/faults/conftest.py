"""The faults suite: attacks on a running hub, then the invariants (``invariants.py``).

Every test is marked ``faults`` (``pytest -m "not faults"`` leaves the suite out) and
bounded by its own timeout. At the end of the run one line per category tells what was
injected, tried and refused, and that no acknowledged command was lost (printed by
``tests/conftest.py``, which pytest-xdist's controller loads too).
"""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "faults: chaos and fuzz test of tests/faults")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/faults/" in item.nodeid.replace("\\", "/"):
            item.add_marker(pytest.mark.faults)
