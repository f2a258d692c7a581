"""The web bridge's ASGI app: the pages, the phones' JSON API, MQTT over WebSocket,
health and metrics.

``create_app(bridge)`` is the factory; ``hub/app.py`` builds the ``Bridge`` (what the app
needs from the hub, see ``web_bridge.ports``). OpenAPI docs are served at ``/docs``.
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError

from hub import __version__
from web_bridge.api import api_router
from web_bridge.errors import ApiError, api_error_handler
from web_bridge.guards import SameOriginMiddleware, validation_error_handler
from web_bridge.ops import ops_router
from web_bridge.pages import pages_router, static_files
from web_bridge.ports import Bridge
from web_bridge.ws_mqtt import ws_router

__all__ = ["create_app"]


def create_app(bridge: Bridge) -> FastAPI:
    app = FastAPI(
        title="tablehub web bridge", version=__version__, max_body_size=bridge.max_body_bytes
    )
    app.add_exception_handler(ApiError, api_error_handler)
    app.add_exception_handler(RequestValidationError, validation_error_handler)
    app.add_middleware(SameOriginMiddleware)
    ws, ws_metrics = ws_router(bridge)
    app.include_router(api_router(bridge))
    app.include_router(ops_router(bridge, ws_metrics))
    app.include_router(ws)
    app.include_router(pages_router())
    app.mount("/static", static_files(), name="static")
    return app
