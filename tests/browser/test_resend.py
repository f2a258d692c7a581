"""The phone page sends a command again, with the same request_id, when no reply comes:
the hub (its broker and WebSocket bridge too) is stopped with SIGSTOP while the player
taps, so the first send goes unanswered; real Chromium, real hub."""

from __future__ import annotations

import json
import re
import signal

from playwright.sync_api import Browser, WebSocket, expect

from tests.support.browser import WAIT_MS, join_table, phone_page
from tests.support.cli import run_cli
from tests.support.http import Http
from tests.support.hub import HubProcess

_PAUSE = re.compile(rb'\{[^{}]*"type":"pause"[^{}]*\}')


def test_an_unanswered_tap_is_sent_again_and_applied_once(
    browser: Browser, hub: HubProcess, http: Http, page_errors: list[str]
) -> None:
    sent: list[bytes] = []

    def watch(socket: WebSocket) -> None:
        socket.on(
            "framesent",
            lambda frame: sent.append(frame if isinstance(frame, bytes) else frame.encode()),
        )

    phone = phone_page(browser, page_errors)
    phone.on("websocket", watch)
    join_table(phone, hub, "Alice", http.join_code())
    phone.get_by_test_id("sit-1").click()
    expect(phone.get_by_test_id("seat-1")).to_have_attribute("data-mine", "true")
    message = phone.get_by_test_id("message")
    with hub.client("bob") as bob:
        assert bob.send({"type": "join", "name": "Bob"})["ok"]
        phone.get_by_test_id("start").click()
        expect(phone.get_by_test_id("status")).to_have_text("Your turn!", timeout=WAIT_MS)
        hub.signal(signal.SIGSTOP)
        try:
            phone.get_by_test_id("pause").click()
            expect(message).to_have_text("No answer yet; sending again…", timeout=WAIT_MS)
        finally:
            hub.signal(signal.SIGCONT)
        expect(phone.get_by_test_id("status")).to_have_text("Paused", timeout=WAIT_MS)
        expect(message).to_have_text("")
        assert bob.send({"type": "resume"})["ok"]  # a round trip: the resends are in
    pauses = [json.loads(m.group()) for frame in sent for m in _PAUSE.finditer(frame)]
    assert len(pauses) >= 2, pauses
    assert all(p == pauses[0] for p in pauses)  # the same command, the same request_id
    done = run_cli("history", "--json", "--data-dir", str(hub.data_dir))
    assert done.returncode == 0, done.stderr
    events = [json.loads(line) for line in done.stdout.splitlines()]
    phone_id = events[0]["by"]  # the phone's session id joined first
    assert [(e["type"], e["by"]) for e in events][-2:] == [("pause", phone_id), ("resume", "bob")]
    assert sum(e["type"] == "pause" for e in events) == 1
