"""Fixtures: one headless Chromium per session, a fresh hub per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, sync_playwright

from tests.support.browser import launch_chromium
from tests.support.http import Http
from tests.support.hub import HubProcess


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    # Module scope: sync Playwright keeps an event loop marked running in this thread
    # until it stops, which would break later tests that call asyncio.run().
    with sync_playwright() as playwright:
        chromium = launch_chromium(playwright)
        yield chromium
        chromium.close()


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "var"


@pytest.fixture
def hub(data_dir: Path) -> Iterator[HubProcess]:
    # Three rounds keep a whole game short; the rules are the same.
    with HubProcess(data_dir, env={"HUB_MAX_ROUNDS": "3"}) as running:
        yield running


@pytest.fixture
def http(hub: HubProcess) -> Http:
    return Http(hub)


@pytest.fixture
def page_errors() -> Iterator[list[str]]:
    """Script errors seen by any page of the test: there must be none."""
    errors: list[str] = []
    yield errors
    assert errors == []
