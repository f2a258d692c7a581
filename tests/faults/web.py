"""The web bridge's HTTP API, as a phone or an operator would call it."""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request
from typing import Any

from tests.faults.hubs import HubAddress

__all__ = ["Api"]


class Api:
    """``Api(address)("POST", "/api/sessions", body)`` -> (status, JSON body)."""

    def __init__(self, address: HubAddress) -> None:
        self.base = f"http://127.0.0.1:{address.http_port}"
        password = (address.data_dir / "operator.txt").read_text().strip()
        self.operator = "Basic " + base64.b64encode(f"operator:{password}".encode()).decode()

    def __call__(
        self, method: str, path: str, body: object = None, *, auth: str | None = None
    ) -> tuple[int, Any]:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.base + path, data=data, method=method)
        request.add_header("Content-Type", "application/json")
        if auth is not None:
            request.add_header("Authorization", auth)
        try:
            with urllib.request.urlopen(request, timeout=15) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"null")

    def join_code(self, game: str = "main") -> str:
        status, body = self("GET", f"/api/games/{game}/join-code", auth=self.operator)
        assert status == 200, body
        return str(body["code"])

    def session(self, name: str, game: str = "main") -> dict[str, Any]:
        """A phone's player session: ``client_id``, ``token``, ``expires_at``..."""
        body = {"game": game, "name": name, "join_code": self.join_code(game)}
        status, session = self("POST", "/api/sessions", body)
        assert status == 200, session
        assert isinstance(session, dict)
        return session
