"""The phone page when things go wrong, in a real headless Chromium against a real hub:
a hub crash, mistakes, a forged pass. A whole game is in test_table.py.

Each page is its own browser context (its own localStorage), as separate phones are.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from playwright.sync_api import Browser, Page, expect

from tests.support.browser import WAIT_MS, join_table, page_url, phone_page
from tests.support.http import Http
from tests.support.hub import HubProcess


def _expect_status(page: Page, pattern: str) -> None:
    expect(page.get_by_test_id("status")).to_have_text(re.compile(pattern), timeout=WAIT_MS)


def test_a_phone_rides_out_a_hub_crash_and_keeps_its_seat(
    browser: Browser, data_dir: Path, page_errors: list[str]
) -> None:
    with HubProcess(data_dir) as first:
        ports = ("--mqtt-port", str(first.mqtt_port), "--http-port", str(first.http_port))
        code = Http(first).join_code()
        alice = phone_page(browser, page_errors)
        join_table(alice, first, "Alice", code)
        alice.get_by_test_id("sit-1").click()
        expect(alice.get_by_test_id("seat-1")).to_have_attribute("data-mine", "true")
        first.kill()
        expect(alice.get_by_test_id("connection")).to_have_text("reconnecting…", timeout=WAIT_MS)
        with HubProcess(data_dir, *ports) as second:
            expect(alice.get_by_test_id("connection")).to_have_text("connected", timeout=30_000)
            expect(alice.get_by_test_id("seat-1")).to_have_attribute("data-mine", "true")
            expect(alice.get_by_test_id("seat-1").locator(".presence")).to_have_text("here")
            with second.client("bob") as bob:
                assert bob.send({"type": "join", "name": "Bob"})["ok"]
                alice.get_by_test_id("start").click()
                _expect_status(alice, "^Your turn!$")
    # The browser logs each refused WebSocket attempt while the hub was down.
    page_errors[:] = [e for e in page_errors if "WebSocket connection to" not in e]


def test_mistakes_are_explained_in_words(
    browser: Browser, hub: HubProcess, http: Http, page_errors: list[str]
) -> None:
    phone = phone_page(browser, page_errors)
    phone.goto(page_url(hub, "/?game=main"))
    phone.get_by_test_id("name").fill("Alice")
    phone.get_by_test_id("code").fill("000000" if http.join_code() != "000000" else "111111")
    phone.get_by_test_id("join").click()
    # The hub's own reason, as a sentence.
    expect(phone.get_by_test_id("message")).to_have_text(
        "That is not the join code shown at the table."
    )
    page_errors.clear()  # the 403 itself is logged by the browser

    phone.get_by_test_id("code").fill(http.join_code())
    phone.get_by_test_id("join").click()
    expect(phone.get_by_test_id("connection")).to_have_text("connected", timeout=WAIT_MS)
    phone.get_by_test_id("sit-1").click()
    with hub.client("bob") as bob:
        assert bob.send({"type": "join", "name": "Bob"})["ok"]
        phone.get_by_test_id("start").click()
        _expect_status(phone, "^Your turn!$")
        # Leaving mid-game is refused by the hub; its reason is shown.
        phone.get_by_test_id("sign-out").click()
        expect(phone.get_by_test_id("message")).to_have_text(
            "Cannot leave while the game is in progress."
        )
        expect(phone.get_by_test_id("seat-1")).to_have_attribute("data-mine", "true")


def test_a_forged_session_is_refused_and_the_phone_asks_to_join_again(
    browser: Browser, hub: HubProcess, http: Http, page_errors: list[str]
) -> None:
    real = http.session("Alice")
    forged = {**real, "token": "forged-token-0123456789", "name": "Alice"}
    phone = phone_page(browser, page_errors)
    phone.goto(page_url(hub, "/?game=main"))
    phone.evaluate(
        "session => localStorage.setItem('tablehub.session.main', session)", json.dumps(forged)
    )
    phone.reload()
    expect(phone.get_by_test_id("join-form")).to_be_visible(timeout=WAIT_MS)
    # refused before its expiry: taken back, as far as the phone can tell
    expect(phone.get_by_test_id("message")).to_contain_text("removed from the table")
    assert phone.evaluate("localStorage.getItem('tablehub.session.main')") is None
    page_errors[:] = [e for e in page_errors if "WebSocket" not in e]


def test_a_kicked_phone_is_told_it_was_removed_and_asked_to_join_again(
    browser: Browser, hub: HubProcess, http: Http, page_errors: list[str]
) -> None:
    alice = phone_page(browser, page_errors)
    join_table(alice, hub, "Alice", http.join_code())
    alice.get_by_test_id("sit-1").click()
    expect(alice.get_by_test_id("seat-1")).to_have_attribute("data-mine", "true")
    with hub.client("operator", role="operator") as operator:
        assert operator.send({"type": "kick", "seat": 1})["ok"]
    expect(alice.get_by_test_id("join-form")).to_be_visible(timeout=WAIT_MS)
    expect(alice.get_by_test_id("message")).to_contain_text("removed from the table")
    assert alice.evaluate("localStorage.getItem('tablehub.session.main')") is None
    page_errors[:] = [e for e in page_errors if "WebSocket" not in e]
