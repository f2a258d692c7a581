"""The web bridge's HTTP errors: one exception, rendered as ``{"error": {code, message}}``."""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import JSONResponse

__all__ = ["ApiError", "api_error_handler"]


class ApiError(Exception):
    def __init__(
        self, status: int, code: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers


async def api_error_handler(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return JSONResponse(
        {"error": {"code": exc.code, "message": exc.message}},
        status_code=exc.status,
        headers=exc.headers,
    )
