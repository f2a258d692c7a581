"""Hooks for the whole suite, loaded by pytest-xdist's controller as well as its workers.

Under ``--dist loadgroup`` the controller schedules with
``tests.support.scheduling.CpuHogScheduling`` (the CPU hogs on one worker, in turn).

The faults suite's tally (``tests.faults.ledger.LEDGER``) is kept by the process that runs
the tests: each xdist worker sends its tally to the controller when it ends, and the
controller prints the sum (a run without xdist prints its own).
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.faults.ledger import LEDGER
from tests.support.scheduling import CpuHogScheduling

_LEDGER_KEY = "tablehub_faults_ledger"


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    if config.getvalue("dist") != "loadgroup":
        return None  # xdist's own
    return CpuHogScheduling(config, log)


def pytest_sessionfinish(session: pytest.Session) -> None:
    workeroutput: dict[str, Any] | None = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:  # an xdist worker
        workeroutput[_LEDGER_KEY] = LEDGER.dump()


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: object) -> None:
    """xdist (controller): a worker ended; add its tally."""
    dumped = getattr(node, "workeroutput", {}).get(_LEDGER_KEY)
    if dumped is not None:
        LEDGER.merge(dumped)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    lines = LEDGER.lines()
    if not lines:
        return
    terminalreporter.section("faults and bad input")
    for line in lines:
        terminalreporter.write_line(line)
