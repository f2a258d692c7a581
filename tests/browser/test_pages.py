"""The phone and display pages in a real headless Chromium against a real hub.

Each page is its own browser context (its own localStorage), as separate phones are.
Screenshots of the final screens go to the test's temp dir (pytest ``tmp_path``).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from playwright.sync_api import Browser, Page, expect

from tests.support.browser import phone_page
from tests.support.http import Http
from tests.support.hub import HubProcess, password_of

TV = {"width": 1920, "height": 1080}
WAIT_MS = 15_000


def _url(hub: HubProcess, path: str = "/") -> str:
    return f"http://127.0.0.1:{hub.http_port}{path}"


def _join(page: Page, hub: HubProcess, name: str, code: str) -> None:
    page.goto(_url(hub, f"/?game=main&code={code}"))
    expect(page.get_by_test_id("code")).to_have_value(code)
    page.get_by_test_id("name").fill(name)
    page.get_by_test_id("join").click()
    expect(page.get_by_test_id("connection")).to_have_text("connected", timeout=WAIT_MS)
    expect(page.get_by_test_id("me")).to_have_text(name)


def _status(page: Page) -> str:
    return page.get_by_test_id("status").inner_text()


def _expect_status(page: Page, pattern: str) -> None:
    expect(page.get_by_test_id("status")).to_have_text(re.compile(pattern), timeout=WAIT_MS)


def _end_turn(page: Page, points: int) -> None:
    for _ in range(points):
        page.get_by_test_id("plus").click()
    expect(page.get_by_test_id("points")).to_have_text(str(points))
    page.get_by_test_id("end-turn").click()


def test_two_phones_play_a_whole_game_watched_by_a_spectator_and_the_display(
    browser: Browser, hub: HubProcess, http: Http, page_errors: list[str], tmp_path: Path
) -> None:
    code = http.join_code()
    alice, bob, carol = (phone_page(browser, page_errors) for _ in range(3))
    display = phone_page(browser, page_errors, viewport=TV)
    tv_password = password_of(hub, "tv", "display")
    display.goto(_url(hub, f"/display?game=main#user=tv&password={tv_password}"))
    expect(display.get_by_test_id("join-code")).to_have_text(code, timeout=WAIT_MS)
    expect(display.locator("#qr img")).to_be_visible()

    _join(alice, hub, "Alice", code)
    alice.get_by_test_id("sit-1").click()
    expect(alice.get_by_test_id("seat-1")).to_have_attribute("data-mine", "true")
    _join(bob, hub, "Bob", code)
    bob.get_by_test_id("sit-2").click()
    expect(bob.get_by_test_id("seat-2")).to_have_attribute("data-mine", "true")
    _join(carol, hub, "Carol", code)
    expect(carol.get_by_test_id("watching")).to_have_text("You are watching.")
    expect(carol.get_by_test_id("sit-1")).to_have_count(0)
    _expect_status(display, "^Ready to start$")

    alice.get_by_test_id("start").click()
    for round_ in (1, 2, 3):
        _expect_status(alice, f"^Round {round_} of 3 · Alice's turn$")
        _end_turn(alice, 2)
        _expect_status(bob, f"^Round {round_} of 3 · Bob's turn$")
        if round_ == 2:
            # Bob reloads mid-game: same session from localStorage, same seat, and the
            # retained state is there at once.
            bob.reload()
            expect(bob.get_by_test_id("connection")).to_have_text("connected", timeout=WAIT_MS)
            expect(bob.get_by_test_id("seat-2")).to_have_attribute("data-mine", "true")
            _expect_status(bob, "^Round 2 of 3 · Bob's turn$")
        _end_turn(bob, 1)

    final = "^Finished · Alice wins, 6\u20133$"  # an en dash
    for page in (alice, bob, carol, display):
        _expect_status(page, final)
    expect(display.get_by_test_id("score-1")).to_have_text("6")
    expect(display.get_by_test_id("score-2")).to_have_text("3")
    expect(display.get_by_test_id("events")).to_contain_text("Bob scored 1")
    expect(alice.get_by_test_id("start")).to_have_text("Play again")

    status, snapshot = http("GET", "/api/games/main")
    assert status == 200
    assert (snapshot["status"], snapshot["winner_id"]) == ("finished", 1)
    assert [p["score"] for p in snapshot["players"]] == [6, 3]
    assert all(p["connected"] for p in snapshot["players"])
    status, history = http("GET", "/api/games/main/history")
    assert [e["type"] for e in history["events"]] == ["join", "join", "start"] + ["end_turn"] * 6

    shots = {
        "phone-alice.png": alice,
        "phone-spectator.png": carol,
        "display.png": display,
    }
    for name, page in shots.items():
        page.screenshot(path=tmp_path / name, full_page=True)
        assert (tmp_path / name).stat().st_size > 10_000
    print(f"screenshots in {tmp_path}")


def test_a_phone_rides_out_a_hub_crash_and_keeps_its_seat(
    browser: Browser, data_dir: Path, page_errors: list[str]
) -> None:
    with HubProcess(data_dir) as first:
        ports = ("--mqtt-port", str(first.mqtt_port), "--http-port", str(first.http_port))
        code = Http(first).join_code()
        alice = phone_page(browser, page_errors)
        _join(alice, first, "Alice", code)
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
                _expect_status(alice, "^Round 1 of 5 · Alice's turn$")
    # The browser logs each refused WebSocket attempt while the hub was down.
    page_errors[:] = [e for e in page_errors if "WebSocket connection to" not in e]


def test_mistakes_are_explained_in_words(
    browser: Browser, hub: HubProcess, http: Http, page_errors: list[str]
) -> None:
    phone = phone_page(browser, page_errors)
    phone.goto(_url(hub, "/?game=main"))
    phone.get_by_test_id("name").fill("Alice")
    phone.get_by_test_id("code").fill("000000" if http.join_code() != "000000" else "111111")
    phone.get_by_test_id("join").click()
    expect(phone.get_by_test_id("message")).to_have_text("That is not the code shown at the table.")
    page_errors.clear()  # the 403 itself is logged by the browser

    phone.get_by_test_id("code").fill(http.join_code())
    phone.get_by_test_id("join").click()
    expect(phone.get_by_test_id("connection")).to_have_text("connected", timeout=WAIT_MS)
    phone.get_by_test_id("sit-1").click()
    with hub.client("bob") as bob:
        assert bob.send({"type": "join", "name": "Bob"})["ok"]
        phone.get_by_test_id("start").click()
        _expect_status(phone, "^Round 1 of 3 · Alice's turn$")
        # Leaving mid-game is refused by the hub; the reply's code is shown in words.
        phone.get_by_test_id("sign-out").click()
        expect(phone.get_by_test_id("message")).to_have_text("That is not possible right now.")
        expect(phone.get_by_test_id("seat-1")).to_have_attribute("data-mine", "true")


def test_a_forged_session_is_refused_and_the_phone_asks_to_join_again(
    browser: Browser, hub: HubProcess, http: Http, page_errors: list[str]
) -> None:
    real = http.session("Alice")
    forged = {**real, "token": "forged-token-0123456789", "name": "Alice"}
    phone = phone_page(browser, page_errors)
    phone.goto(_url(hub, "/?game=main"))
    phone.evaluate(
        "session => localStorage.setItem('tablehub.session.main', session)", json.dumps(forged)
    )
    phone.reload()
    expect(phone.get_by_test_id("join-form")).to_be_visible(timeout=WAIT_MS)
    expect(phone.get_by_test_id("message")).to_contain_text("expired")
    assert phone.evaluate("localStorage.getItem('tablehub.session.main')") is None
    page_errors[:] = [e for e in page_errors if "WebSocket" not in e]


def test_pages_fit_a_phone_and_a_tv(
    browser: Browser, hub: HubProcess, page_errors: list[str]
) -> None:
    for viewport, path in (({"width": 360, "height": 640}, "/"), (TV, "/display")):
        page = phone_page(browser, page_errors, viewport=viewport)
        page.goto(_url(hub, path))
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= viewport["width"], f"{path} scrolls sideways at {viewport}"
