"""The phone page on Debian's mosquitto (``hub serve --broker``): with the dynamic security
plugin a phone joins, takes a seat and plays; without it the page says why it cannot."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, expect

from tests.support.browser import phone_page
from tests.support.http import Http
from tests.support.hub import HubProcess
from tests.support.mosquitto import Mosquitto, PluginlessMosquitto

WAIT_MS = 15_000


@pytest.fixture(params=[Mosquitto, PluginlessMosquitto], ids=["dynsec", "no-plugin"])
def hub(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[HubProcess]:
    data_dir = tmp_path / "var"
    with (
        request.param(data_dir, tmp_path / "mosquitto") as broker,
        HubProcess(data_dir, broker=broker) as running,
    ):
        yield running


def test_a_phone_on_mosquitto_plays_or_is_told_why_not(
    browser: Browser, hub: HubProcess, page_errors: list[str]
) -> None:
    assert hub.broker is not None
    seats = not isinstance(hub.broker, PluginlessMosquitto)
    phone = phone_page(browser, page_errors)
    phone.goto(f"http://127.0.0.1:{hub.http_port}/?game=main&code={Http(hub).join_code()}")
    phone.get_by_test_id("name").fill("Ann")
    phone.get_by_test_id("join").click()
    if not seats:
        expect(phone.get_by_test_id("message")).to_contain_text(
            "This table cannot take phones: the broker at", timeout=WAIT_MS
        )
        expect(phone.get_by_test_id("join-form")).to_be_visible()
        page_errors.clear()  # the 503 itself is logged by the browser
        return
    expect(phone.get_by_test_id("connection")).to_have_text("connected", timeout=WAIT_MS)
    phone.get_by_test_id("sit-1").click()
    expect(phone.get_by_test_id("seat-1")).to_have_attribute("data-mine", "true", timeout=WAIT_MS)
