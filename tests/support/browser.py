"""Debian's Chromium, headless, driven by Playwright (installed by ``make test``)."""

from __future__ import annotations

import os
from pathlib import Path

from playwright.sync_api import Browser, Page, Playwright

__all__ = ["CHROMIUM", "CHROMIUM_ARGS", "launch_chromium", "phone_page"]

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


def launch_chromium(playwright: Playwright) -> Browser:
    if not CHROMIUM.exists():
        msg = f"{CHROMIUM} is missing: `make test` installs Debian's chromium package"
        raise RuntimeError(msg)
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)


def phone_page(browser: Browser, errors: list[str], *, viewport: dict[str, int] = PHONE) -> Page:
    """A page in its own context (own localStorage, like a separate phone); script errors
    and failed loads are collected in ``errors``."""
    context = browser.new_context(viewport=viewport, device_scale_factor=1)  # type: ignore[arg-type]
    page = context.new_page()
    page.on("pageerror", lambda error: errors.append(f"page error: {error}"))
    page.on(
        "console",
        lambda message: (
            errors.append(f"console: {message.text}") if message.type == "error" else None
        ),
    )
    return page
