"""The web bridge's ASGI app: the pages, the phones' JSON API, MQTT over WebSocket,
health and metrics.

``create_app(bridge)`` is the factory; ``hub/app.py`` builds the ``Bridge`` (what the app
needs from the hub, see ``web_bridge.ports``). OpenAPI docs are served at ``/docs``.
``websocket_protocol(app)`` is the uvicorn WebSocket protocol to serve it with: with a
broker that takes frames directly (``Bridge.frames``), ``/mqtt`` bypasses ASGI
(``web_bridge.ws_lean``) and shares the route's connection gate and metrics.
"""

from __future__ import annotations

import asyncio

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError

from hub import __version__
from web_bridge.api import api_router
from web_bridge.errors import ApiError, api_error_handler
from web_bridge.guards import SameOriginMiddleware, validation_error_handler
from web_bridge.ops import ops_router
from web_bridge.pages import pages_router, static_files
from web_bridge.ports import Bridge
from web_bridge.server import ASGI_WEBSOCKETS
from web_bridge.ws_lean import lean_protocol
from web_bridge.ws_mqtt import WebSocketGate, ws_router

__all__ = ["create_app", "websocket_protocol"]


def create_app(bridge: Bridge) -> FastAPI:
    app = FastAPI(
        title="tablehub web bridge", version=__version__, max_body_size=bridge.max_body_bytes
    )
    app.add_exception_handler(ApiError, api_error_handler)
    app.add_exception_handler(RequestValidationError, validation_error_handler)
    app.add_middleware(SameOriginMiddleware)
    gate = WebSocketGate(bridge.ws_max_connections, bridge.ws_max_unauthenticated)
    ws, ws_metrics = ws_router(bridge, gate)
    app.include_router(api_router(bridge))
    app.include_router(ops_router(bridge, ws_metrics))
    app.include_router(ws)
    app.include_router(pages_router())
    app.mount("/static", static_files(), name="static")
    app.state.websocket_protocol = (
        lean_protocol(bridge.frames, gate) if bridge.frames is not None else ASGI_WEBSOCKETS
    )
    return app


def websocket_protocol(app: FastAPI) -> type[asyncio.Protocol] | str:
    """The ``ws`` to give uvicorn for an app of ``create_app``."""
    protocol: type[asyncio.Protocol] | str = app.state.websocket_protocol
    return protocol
