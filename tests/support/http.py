"""A small HTTP client for the web bridge's API, with the operator's credentials."""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request
from typing import Any

from tests.support.hub import HubProcess, password_of

__all__ = ["Http", "Response"]

Response = tuple[int, Any]


class Http:
    def __init__(self, hub: HubProcess) -> None:
        self.base = f"http://127.0.0.1:{hub.http_port}"
        self.operator = f"operator:{password_of(hub, 'operator')}"

    def __call__(
        self, method: str, path: str, body: object = None, *, auth: str | None = None
    ) -> Response:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.base + path, data=data, method=method)
        request.add_header("Content-Type", "application/json")
        if auth is not None:
            request.add_header("Authorization", "Basic " + base64.b64encode(auth.encode()).decode())
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                raw = response.read().decode()
                status = response.status
                kind = response.headers.get("Content-Type", "")
        except urllib.error.HTTPError as exc:
            raw, status, kind = exc.read().decode(), exc.code, exc.headers.get("Content-Type", "")
        return status, json.loads(raw) if kind.startswith("application/json") else raw

    def join_code(self, game: str = "main") -> str:
        status, body = self("GET", f"/api/games/{game}/join-code", auth=self.operator)
        assert status == 200, body
        code: str = body["code"]
        return code

    def session(self, name: str, game: str = "main") -> dict[str, Any]:
        status, body = self(
            "POST", "/api/sessions", {"game": game, "name": name, "join_code": self.join_code()}
        )
        assert status == 200, body
        assert isinstance(body, dict)
        return body
