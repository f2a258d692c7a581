"""Run an ASGI app with uvicorn inside an existing event loop, as a context manager."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Generator
from types import TracebackType
from typing import Self

import uvicorn
from starlette.types import ASGIApp

__all__ = ["ASGI_WEBSOCKETS", "HttpServer"]

_LOGGER = logging.getLogger(__name__)
ASGI_WEBSOCKETS = "websockets-sansio"
"""uvicorn's WebSocket implementation when every WebSocket goes through ASGI."""


class _EmbeddedUvicorn(uvicorn.Server):
    """uvicorn that leaves signals to the host process (which sets its own stop flag)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


class HttpServer:
    """``async with HttpServer(app, host, port) as http:`` serves on ``http.port``.

    ``ws`` is uvicorn's WebSocket protocol: a name, or a class (``web_bridge.ws_lean``).

    ``X-Forwarded-For`` is believed only from ``trusted_proxies`` (none by default; uvicorn
    on its own trusts 127.0.0.1, which gave every spoofed address a fresh login throttle).
    """

    def __init__(
        self,
        app: ASGIApp,
        host: str,
        port: int,
        *,
        trusted_proxies: tuple[str, ...] = (),
        ws: type[asyncio.Protocol] | str = ASGI_WEBSOCKETS,
    ) -> None:
        self._app = app
        self._ws = ws
        self._host = host
        self._port = port
        self._trusted_proxies = trusted_proxies
        self._server: _EmbeddedUvicorn | None = None
        self._task: asyncio.Task[None] | None = None
        self.port = port

    async def __aenter__(self) -> Self:
        family = socket.AF_INET6 if ":" in self._host else socket.AF_INET
        # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY on accepted connections only when
        # the listening socket says it is TCP. With Nagle on, a QoS 1 command's reply waits
        # ~40 ms behind the PUBACK for the phone's delayed ACK.
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self._host, self._port))
        except OSError as exc:
            sock.close()
            msg = f"cannot listen for HTTP on {self._host}:{self._port}: {exc.strerror or exc}"
            raise OSError(exc.errno, msg) from exc
        self.port = int(sock.getsockname()[1])
        config = uvicorn.Config(
            self._app,
            log_config=None,
            access_log=False,
            lifespan="on",
            ws=self._ws,
            proxy_headers=bool(self._trusted_proxies),
            forwarded_allow_ips=list(self._trusted_proxies) or None,
        )
        self._server = _EmbeddedUvicorn(config)
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]), name="http")
        while not self._server.started:
            if self._task.done():
                self._task.result()
                msg = "the HTTP server stopped during start-up"
                raise RuntimeError(msg)
            await asyncio.sleep(0.01)
        _LOGGER.info("HTTP listening on %s:%d", self._host, self.port)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            await self._task
