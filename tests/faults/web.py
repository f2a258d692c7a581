"""The web bridge's HTTP API, as a phone or an operator would call it."""

from __future__ import annotations

import base64
import http.client
import json
import urllib.error
import urllib.request
from collections.abc import Iterable
from typing import Any

from tests.faults.hubs import HubAddress

__all__ = ["Api", "http_request"]


def http_request(
    port: int,
    method: str,
    path: str,
    body: bytes | Iterable[bytes] | None = None,
    *,
    headers: dict[str, str] | None = None,
    source: str | None = None,
    timeout: float = 30.0,
) -> tuple[int, bytes]:
    """One raw HTTP request to 127.0.0.1:``port`` -> (status, body); ``source`` another
    loopback address to come from (127.0.0.2...), as a second machine would. A body of
    chunks is sent chunked (no Content-Length)."""
    address = None if source is None else (source, 0)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout, source_address=address)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


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
