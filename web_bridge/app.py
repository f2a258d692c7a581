"""The web bridge's ASGI app (phone page and MQTT over WebSockets arrive with issue #4)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse

__all__ = ["create_app"]

HealthCheck = Callable[[], dict[str, Any]]


def create_app(health: HealthCheck) -> FastAPI:
    """The bridge app; ``health`` reports the hub's parts, each ``{"ok": bool, ...}``."""
    app = FastAPI(title="tablehub web bridge")

    @app.get("/healthz")
    def healthz() -> JSONResponse:
        parts = health()
        ok = all(part.get("ok", False) for part in parts.values())
        return JSONResponse({"ok": ok, **parts}, status_code=200 if ok else 503)

    return app
