"""Guards in front of the routes: cross-site state changes refused, validation errors
answered briefly.

* A ``POST``/``PUT``/``PATCH``/``DELETE`` whose ``Origin`` is not the page's own (scheme
  and host as the request's ``Host``) gets 403 ``cross_origin``: a page on another site
  cannot use the operator's cached HTTP Basic login. Requests without ``Origin`` (curl,
  the CLI, other programs) are not browsers' cross-site requests and pass.
* 422 answers list each error's place, message and type, never the input (a 10 MB body
  was echoed back whole), and are at most ``MAX_ERRORS`` long.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

__all__ = ["SameOriginMiddleware", "validation_error_handler"]

STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
MAX_ERRORS = 10
MAX_MESSAGE_CHARS = 200


def _same_origin(origin: str, host: str | None, scheme: str) -> bool:
    parts = urlsplit(origin)
    return host is not None and parts.scheme == scheme and parts.netloc == host


class SameOriginMiddleware:
    """Pure ASGI: refuses cross-origin state-changing requests (see the module docstring)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] in STATE_CHANGING:
            headers = Headers(scope=scope)
            origin = headers.get("origin")
            scheme = "https" if scope.get("scheme") == "https" else "http"
            if origin is not None and not _same_origin(origin, headers.get("host"), scheme):
                response = JSONResponse(
                    {
                        "error": {
                            "code": "cross_origin",
                            "message": "state-changing requests from another site are refused",
                        }
                    },
                    status_code=403,
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


async def validation_error_handler(_request: Request, exc: Exception) -> JSONResponse:
    """422 with each error's ``loc``, ``msg`` and ``type`` (FastAPI's shape, no ``input``)."""
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    detail = [
        {
            "loc": [part if isinstance(part, int) else str(part)[:64] for part in err["loc"]],
            "msg": str(err.get("msg", ""))[:MAX_MESSAGE_CHARS],
            "type": str(err.get("type", "")),
        }
        for err in errors[:MAX_ERRORS]
    ]
    return JSONResponse({"detail": detail}, status_code=422)
