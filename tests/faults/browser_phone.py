"""The phone page in headless Chromium as a chaos survivor (``CLIENT_KINDS``).

It joins the table with a player session (a spectator: the storm's players hold both
seats) and must come back by itself after every death of the hub: its connection shows
"connected" again and its retained presence, which a killed broker lost, is ``online``.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import expect, sync_playwright

from tests.faults.hubs import HubAddress, operator_client
from tests.faults.web import Api
from tests.support.browser import launch_chromium, phone_page
from tests.support.mqtt import TOPICS

__all__ = ["BrowserPhone"]


class BrowserPhone:
    name = "browser-phone"

    def __init__(self, address: HubAddress, work: Path) -> None:
        self.address = address
        self.errors: list[str] = []
        self._playwright = sync_playwright().start()
        try:
            self._browser = launch_chromium(self._playwright)
            self.page = phone_page(self._browser, self.errors)
            code = Api(address).join_code()
            self.page.goto(f"http://127.0.0.1:{address.http_port}/?game=main&code={code}")
            self.page.get_by_test_id("name").fill("Watcher")
            self.page.get_by_test_id("join").click()
            expect(self.page.get_by_test_id("connection")).to_have_text("connected")
            self.client_id: str = self.page.evaluate(
                "JSON.parse(localStorage.getItem('tablehub.session.main')).client_id"
            )
            work.mkdir(parents=True, exist_ok=True)
            (work / "browser-phone.txt").write_text(self.client_id + "\n")
        except BaseException:
            self.close()
            raise

    def settle(self, timeout: float) -> None:
        try:
            expect(self.page.get_by_test_id("connection")).to_have_text(
                "connected", timeout=timeout * 1000
            )
        except AssertionError as exc:
            raise TimeoutError(str(exc)) from exc
        topic = TOPICS.client_presence(self.client_id)
        with operator_client(self.address, "browser-watch") as watcher:
            watcher.subscribe(topic)
            online = {"state": "online"}
            watcher.wait_for(lambda m: m.topic == topic and m.json() == online, timeout)
        script_errors = [e for e in self.errors if e.startswith("page error")]
        assert script_errors == [], script_errors

    def close(self) -> None:
        with contextlib.suppress(PlaywrightError):
            self._playwright.stop()
