"""An evening at the table, as a user sees it: two phones (360x640 and 430x932), a
spectator and the TV (1920x1080, then 1280x720) play a whole game with a 6-second turn
clock that runs out once (and is paused once). The QR code is decoded for real, axe-core
audits each kind of screen, and every screen is saved at every stage under pytest's temp
dir (``screens*``, named ``NN-page-stage.png``, listed with ``-s``).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterator
from io import BytesIO
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import zxingcpp
from PIL import Image
from playwright.sync_api import Browser, Page, expect

from tests.support.browser import WAIT_MS, audit, join_table, page_url, phone_page
from tests.support.http import Http
from tests.support.hub import HubProcess, password_of

TURN_SECONDS = 6
ROUNDS = 2
TV = {"width": 1920, "height": 1080}
SMALL_TV = {"width": 1280, "height": 720}
SMALL_PHONE = {"width": 360, "height": 640}
LARGE_PHONE = {"width": 430, "height": 932}
SERIOUS = {"serious", "critical"}
SCORE = "6\u20133"  # the winner's first (Bob: 5 + 1, Alice: 0 + 3), with an en dash
FINAL = f"Bob wins {SCORE}"


@pytest.fixture(scope="module")
def table_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubProcess]:
    env = {"HUB_MAX_ROUNDS": str(ROUNDS), "HUB_DEFAULT_TURN_SECONDS": str(TURN_SECONDS)}
    with HubProcess(tmp_path_factory.mktemp("table") / "var", env=env) as running:
        yield running


class Screens:
    """Numbered screenshots of each page at each stage, and axe-core's findings."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.names: list[str] = []
        self.audits: dict[str, dict[str, Any]] = {}

    def shot(self, page: Page, name: str) -> None:
        path = self.folder / f"{len(self.names) + 1:02d}-{name}.png"
        page.screenshot(path=path)
        assert path.stat().st_size > 5_000, path
        self.names.append(path.name)

    def audit(self, page: Page, name: str) -> None:
        result = audit(page)
        self.audits[name] = result
        bad = [v for v in result["violations"] if v["impact"] in SERIOUS]
        contrast = [v for v in result["violations"] if v["id"] == "color-contrast"]
        assert not bad, f"{name}: {bad}"
        assert not contrast, f"{name}: {contrast}"


def _fits(page: Page, *, vertically: bool = False) -> None:
    size = page.viewport_size
    assert size is not None
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= size["width"], f"scrolls sideways at {size}"
    if vertically:
        height = page.evaluate("document.documentElement.scrollHeight")
        assert height <= size["height"], f"scrolls down at {size}"


def _headline(page: Page, text: str) -> None:
    expect(page.get_by_test_id("status")).to_have_text(text, timeout=WAIT_MS)


def _qr_link(display: Page) -> str:
    """The display's QR code as a phone camera reads it: pixels from a screenshot."""
    png = display.get_by_test_id("qr").screenshot()
    found = zxingcpp.read_barcodes(Image.open(BytesIO(png)).convert("L"))
    assert len(found) == 1, "the QR code on the display does not decode"
    return str(found[0].text)


def _quiet_zone_modules(display: Page) -> float:
    """Light modules left of the QR code, measured on its pixels: the module size from the
    top-left finder pattern (7 modules wide)."""
    return float(
        display.evaluate(
            """() => {
                const img = document.querySelector("#qr img");
                const canvas = document.createElement("canvas");
                canvas.width = img.naturalWidth; canvas.height = img.naturalHeight;
                const g = canvas.getContext("2d"); g.drawImage(img, 0, 0);
                const { data, width, height } = g.getImageData(0, 0, canvas.width, canvas.height);
                const dark = (x, y) => data[4 * (y * width + x)] < 128;
                const darkRow = (y) => [...Array(width).keys()].some((x) => dark(x, y));
                let y = 0; while (y < height && !darkRow(y)) y += 1;
                let left = 0; while (!dark(left, y)) left += 1;
                let right = left; while (dark(right, y)) right += 1;
                return left / ((right - left) / 7);
            }"""
        )
    )


def test_an_evening_two_phones_a_spectator_and_the_tv(
    browser: Browser,
    table_hub: HubProcess,
    page_errors: list[str],
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    hub = table_hub
    screens = Screens(tmp_path_factory.mktemp("screens"))
    code = Http(hub).join_code()
    tv_password = password_of(hub, "tv", "display")

    # The TV, as the README's kiosk command opens it.
    tv = phone_page(browser, page_errors, viewport=TV, bypass_csp=True)
    tv.goto(page_url(hub, f"/display?game=main#user=tv&password={tv_password}"))
    expect(tv.get_by_test_id("join-code")).to_have_text(code, timeout=WAIT_MS)
    expect(tv.get_by_test_id("connection")).to_have_text("connected", timeout=WAIT_MS)
    link = urlsplit(_qr_link(tv))
    assert link.hostname is not None
    assert link.hostname != "localhost"
    if re.fullmatch(r"[0-9.]+|[0-9a-f:]+", link.hostname):
        assert not ipaddress.ip_address(link.hostname).is_loopback, link
    assert link.port == hub.http_port
    assert (link.path, parse_qs(link.query)) == ("/", {"game": ["main"], "code": [code]})
    assert Http(hub)("GET", "/api/info")[1]["public_url"] == f"http://{link.netloc}"
    assert _quiet_zone_modules(tv) == pytest.approx(4)
    # The password stays out of the disk-backed storage and out of the address bar.
    assert tv.evaluate("localStorage.length") == 0
    assert "password" not in tv.url
    screens.shot(tv, "tv-1080p-waiting")
    screens.audit(tv, "tv waiting")

    # Alice on a small phone: the join form.
    alice = phone_page(browser, page_errors, viewport=SMALL_PHONE, bypass_csp=True)
    # Headless Chromium has no vibration motor: record what the page asks for instead.
    alice.add_init_script("window.buzzes = []; navigator.vibrate = (p) => buzzes.push(p) > 0;")
    alice.goto(page_url(hub, f"/?game=main&code={code}"))
    expect(alice.get_by_test_id("join-form")).to_be_visible()
    expect(alice.get_by_test_id("connection")).to_be_hidden()
    expect(alice.locator("#code-hint")).to_contain_text("on the TV")
    screens.shot(alice, "alice-360x640-join-form")
    screens.audit(alice, "phone join form")
    join_table(alice, hub, "Alice", code)
    alice.get_by_test_id("sit-1").click()
    expect(alice.get_by_test_id("me")).to_have_text("You: Alice, seat 1")

    bob = phone_page(browser, page_errors, viewport=LARGE_PHONE)
    join_table(bob, hub, "Bob", code)
    bob.get_by_test_id("sit-2").click()
    expect(bob.get_by_test_id("seat-2")).to_have_attribute("data-mine", "true")
    carol = phone_page(browser, page_errors, viewport=SMALL_PHONE)
    join_table(carol, hub, "Carol", code)
    expect(carol.get_by_test_id("me")).to_have_text("You: Carol, watching")
    _headline(tv, "Ready to start")
    screens.shot(alice, "alice-360x640-seated")
    screens.shot(tv, "tv-1080p-ready")

    alice.get_by_test_id("start").click()
    # Round 1: the turn is Alice's, unmistakably; the clock counts down on every screen.
    # She is looked at closely (screenshots, audits) while her clock runs out: the one
    # turn that ends by itself, so that a slow machine cannot time out any other.
    _headline(alice, "Your turn!")
    end_turn = alice.get_by_test_id("end-turn").bounding_box()
    pause = alice.get_by_test_id("pause").bounding_box()
    assert end_turn is not None
    assert pause is not None
    assert end_turn["y"] > SMALL_PHONE["height"] / 2, "End turn is not where the thumb is"
    assert end_turn["y"] + end_turn["height"] <= SMALL_PHONE["height"]
    assert end_turn["y"] - (pause["y"] + pause["height"]) > 150, "Pause is next to End turn"
    expect(alice.get_by_test_id("headline")).to_have_attribute("data-mood", "mine")
    assert alice.evaluate("buzzes") == [200]
    screens.shot(alice, "alice-360x640-your-turn")
    screens.audit(alice, "phone in game")
    _headline(bob, "Alice's turn")
    for page in (alice, bob, tv):
        expect(page.get_by_test_id("clock")).to_have_text(re.compile(r"^0:0[0-6]$"))
    screens.shot(bob, "bob-430x932-waiting")
    screens.shot(tv, "tv-1080p-round-1")
    screens.audit(tv, "tv in game")
    for page in (alice, bob, carol):
        _fits(page)

    _headline(bob, "Your turn!")  # the hub ended Alice's turn with 0 points
    _headline(alice, "Bob's turn")
    expect(tv.get_by_test_id("latest")).to_have_text("Latest: Alice ran out of time: 0 points")
    bob.reload()  # same pass from localStorage, same seat, the retained state at once
    _headline(bob, "Your turn!")
    bob.get_by_test_id("plus-5").click()
    expect(bob.get_by_test_id("points")).to_have_text("5")
    bob.get_by_test_id("end-turn").click()
    # Round 2: Alice scores 3, Bob pauses in his turn and then scores 1.
    _headline(alice, "Your turn!")
    alice.get_by_test_id("plus-5").click()
    alice.get_by_test_id("minus-1").click()
    alice.get_by_test_id("minus-1").click()
    expect(alice.get_by_test_id("points")).to_have_text("3")
    alice.get_by_test_id("end-turn").click()
    _headline(bob, "Your turn!")
    bob.get_by_test_id("pause").click()
    # Paused: the clock stands still, showing what is left; resume runs it on.
    _headline(bob, "Paused")
    _headline(tv, "Paused · round 2 of 2")
    for page in (bob, tv):
        expect(page.get_by_test_id("clock")).to_have_text(re.compile(r"^0:0[1-6] left$"))
    screens.shot(bob, "bob-430x932-paused")
    screens.shot(tv, "tv-1080p-paused")
    bob.get_by_test_id("resume").click()
    _headline(bob, "Your turn!")
    bob.get_by_test_id("plus-1").click()
    bob.get_by_test_id("end-turn").click()

    _headline(bob, "You won!")
    expect(bob.get_by_test_id("detail")).to_have_text(SCORE)
    for page in (alice, carol, tv):
        _headline(page, FINAL)
    expect(tv.get_by_test_id("seat-2")).to_have_attribute("data-winner", "true")
    expect(tv.get_by_test_id("seat-1")).to_have_attribute("data-winner", "false")
    expect(tv.get_by_test_id("result")).to_have_text(f"Game over · {FINAL}")
    expect(alice.get_by_test_id("start")).to_have_text("Play again")
    screens.shot(bob, "bob-430x932-won")
    screens.shot(alice, "alice-360x640-lost")
    screens.shot(carol, "carol-360x640-watching-game-over")
    screens.shot(tv, "tv-1080p-game-over")
    screens.audit(tv, "tv game over")
    screens.audit(alice, "phone game over")
    _fits(tv, vertically=True)

    # A smaller TV takes over after the game (the same display user: one at a time), and
    # shows the whole game from the history API.
    tv.context.close()
    small = phone_page(browser, page_errors, viewport=SMALL_TV)
    small.goto(page_url(hub, f"/display?game=main#user=tv&password={tv_password}"))
    result = small.get_by_test_id("result")
    expect(result).to_have_text(f"Game over · {FINAL}", timeout=WAIT_MS)
    rows = small.get_by_test_id("moves").locator("tbody tr")
    expect(rows.nth(0)).to_have_text(re.compile(r"^Round 1\s*0 time up\s*5$"))
    expect(rows.nth(1)).to_have_text(re.compile(r"^Round 2\s*3\s*1$"))
    expect(small.get_by_test_id("connection")).to_have_text("connected")
    _fits(small, vertically=True)
    screens.shot(small, "tv-720p-game-over-from-history")

    history = Http(hub)("GET", "/api/games/main/history")[1]["events"]
    timeouts = [e for e in history if e["type"] == "turn_timeout"]
    assert [(e["by"], e["seat"], e["points"]) for e in timeouts] == [("hub", 1, 0)]
    print(f"screenshots in {screens.folder}: {', '.join(screens.names)}")
    for name, audited in screens.audits.items():
        found = [f"{v['id']} ({v['impact']}, {v['nodes']})" for v in audited["violations"]]
        print(f"axe {name}: {audited['passes']} rules pass, violations: {found or 'none'}")
