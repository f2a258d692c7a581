"""The browser side: the phone page ``/``, the display page ``/display``, their scripts
and styles under ``/static``, and the npm packages they use under ``/assets``.

The npm packages come from ``node_modules`` (``npm ci`` against the committed
package-lock.json), never a CDN: the table may have no internet.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse, Response
from fastapi.staticfiles import StaticFiles

from web_bridge.errors import ApiError

__all__ = ["NODE_MODULES", "STATIC_DIR", "VENDOR_ASSETS", "pages_router", "static_files"]

STATIC_DIR = Path(__file__).resolve().parent / "static"
NODE_MODULES = Path(__file__).resolve().parent.parent / "node_modules"
VENDOR_ASSETS = {
    "mqtt.esm.js": "mqtt/dist/mqtt.esm.js",
    "qrcode.mjs": "qrcode-generator/dist/qrcode.mjs",
}
"""``/assets/{name}`` -> the file inside node_modules (see package.json)."""

_PAGE_HEADERS = {
    "Cache-Control": "no-cache",
    "Content-Security-Policy": (
        "default-src 'self'; connect-src 'self'; img-src 'self' data:; "
        "style-src 'self'; script-src 'self'; worker-src 'self' blob:; frame-ancestors 'none'"
    ),
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}


def static_files() -> StaticFiles:
    return StaticFiles(directory=STATIC_DIR)


def pages_router(node_modules: Path = NODE_MODULES) -> APIRouter:
    router = APIRouter(include_in_schema=False)

    def page(name: str) -> Response:
        return FileResponse(STATIC_DIR / name, media_type="text/html", headers=_PAGE_HEADERS)

    @router.get("/")
    def phone_page() -> Response:
        """Join with the table's code, take a seat or watch, play."""
        return page("index.html")

    @router.get("/display")
    def display_page() -> Response:
        """The big screen: scores, turn, round, and the QR code that lets phones join."""
        return page("display.html")

    @router.get("/assets/{name}")
    def vendor_asset(name: str) -> Response:
        relative = VENDOR_ASSETS.get(name)
        if relative is None:
            raise ApiError(404, "not_found", f"no asset {name!r}")
        path = node_modules / relative
        if not path.is_file():
            raise ApiError(
                503, "assets_missing", f"{path} is missing: run `npm ci` in the checkout"
            )
        return FileResponse(
            path, media_type="text/javascript", headers={"Cache-Control": "max-age=3600"}
        )

    return router
