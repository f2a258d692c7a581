"""The faults suite: attacks on a running hub, then the invariants (``invariants.py``).

Every test is marked ``faults`` (``pytest -m "not faults"`` leaves the suite out) and
bounded by its own timeout. At the end of the run one line per category tells what was
injected, tried and refused, and that no acknowledged command was lost.
"""

from __future__ import annotations

import pytest

from tests.faults.ledger import LEDGER


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "faults: chaos and fuzz test of tests/faults")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/faults/" in item.nodeid.replace("\\", "/"):
            item.add_marker(pytest.mark.faults)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    lines = LEDGER.lines()
    if not lines:
        return
    terminalreporter.section("faults and bad input")
    for line in lines:
        terminalreporter.write_line(line)
