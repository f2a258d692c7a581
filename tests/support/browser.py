"""Debian's Chromium, headless, driven by Playwright (installed by ``make test``)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from playwright.sync_api import Browser, Page, Playwright, expect

from tests.support.cli import REPO
from tests.support.hub import HubProcess

__all__ = [
    "AXE_SCRIPT",
    "CHROMIUM",
    "CHROMIUM_ARGS",
    "WAIT_MS",
    "audit",
    "join_table",
    "launch_chromium",
    "page_url",
    "phone_page",
]

CHROMIUM = Path(os.environ.get("TABLEHUB_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",  # as root in CI
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    # Without these Chromium keeps dialling Google's hosts, refused on a closed network.
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PHONE = {"width": 360, "height": 640}
WAIT_MS = 15_000
"""How long a page may take to show what the hub did (generous: the machine is shared)."""
AXE_SCRIPT = REPO / "node_modules" / "axe-core" / "axe.min.js"
"""axe-core from npm (package-lock.json), injected into the page under test."""
AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]


def launch_chromium(playwright: Playwright) -> Browser:
    if not CHROMIUM.exists():
        msg = f"{CHROMIUM} is missing: `make test` installs Debian's chromium package"
        raise RuntimeError(msg)
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)


def phone_page(
    browser: Browser,
    errors: list[str],
    *,
    viewport: dict[str, int] = PHONE,
    bypass_csp: bool = False,
) -> Page:
    """A page in its own context (own localStorage, like a separate phone); script errors
    and failed loads are collected in ``errors``. ``bypass_csp`` lets :func:`audit` inject
    axe-core (the pages' CSP allows only their own scripts)."""
    context = browser.new_context(
        viewport=viewport,  # type: ignore[arg-type]
        device_scale_factor=1,
        bypass_csp=bypass_csp,
    )
    page = context.new_page()
    page.on("pageerror", lambda error: errors.append(f"page error: {error}"))
    page.on(
        "console",
        lambda message: (
            errors.append(f"console: {message.text}") if message.type == "error" else None
        ),
    )
    return page


def audit(page: Page) -> dict[str, Any]:
    """Run axe-core (WCAG 2.1 A and AA rules) on the page as it is now: its violations by
    rule id with impact and node count, and how many rules passed."""
    if not AXE_SCRIPT.is_file():
        msg = f"{AXE_SCRIPT} is missing: run `npm ci` (make assets)"
        raise RuntimeError(msg)
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.add_script_tag(path=AXE_SCRIPT)
    result: dict[str, Any] = page.evaluate(
        """async (tags) => {
            const r = await axe.run(document, { runOnly: { type: "tag", values: tags } });
            return {
                passes: r.passes.length,
                violations: r.violations.map((v) => ({
                    id: v.id, impact: v.impact, nodes: v.nodes.length,
                    targets: v.nodes.slice(0, 3).map((n) => n.target.join(" ")),
                })),
            };
        }""",
        AXE_TAGS,
    )
    return result


def page_url(hub: HubProcess, path: str = "/") -> str:
    return f"http://127.0.0.1:{hub.http_port}{path}"


def join_table(page: Page, hub: HubProcess, name: str, code: str) -> None:
    """Open the join link, give a name and join: connected, watching until seated."""
    page.goto(page_url(hub, f"/?game=main&code={code}"))
    expect(page.get_by_test_id("code")).to_have_value(code)
    page.get_by_test_id("name").fill(name)
    page.get_by_test_id("join").click()
    expect(page.get_by_test_id("connection")).to_have_text("connected", timeout=WAIT_MS)
    expect(page.get_by_test_id("me")).to_have_text(f"You: {name}, watching")
