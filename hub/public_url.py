"""The address phones use to reach the hub, and the join link built from it.

``public_url`` (``--public-url``, ``HUB_PUBLIC_URL``) wins. Unset, the hub takes the
address of the interface its default route leaves by (a UDP socket "connected" to a
non-routable address: the kernel picks the source address, nothing is sent) with the real
HTTP port; a phone on the same network reaches that. Never a loopback address: on a
machine without any network address the link names the host by its mDNS name
(``HOST.local``, which Raspberry Pi OS answers with avahi), and the log says so.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
from urllib.parse import quote, urlsplit

__all__ = ["JoinLinks", "join_url", "lan_address", "validate_public_url"]

_LOGGER = logging.getLogger(__name__)
_PROBE = ("10.255.255.255", 1)
"""Not routable anywhere: ``connect()`` on a UDP socket only picks the route."""


def validate_public_url(value: str) -> str:
    """``http(s)://HOST[:PORT][/PATH]`` without query or fragment, trailing ``/`` removed."""
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        msg = f"{value!r} is not an http:// or https:// URL with a host"
        raise ValueError(msg)
    if parts.query or parts.fragment or parts.username or parts.password:
        msg = f"{value!r}: give only scheme, host, port and path"
        raise ValueError(msg)
    return value.rstrip("/")


def _usable(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    return not (ip.is_loopback or ip.is_unspecified or ip.is_link_local)


def lan_address(bind: str) -> str | None:
    """The hub's address on the LAN, or None when the machine has none."""
    if bind not in ("", "0.0.0.0", "::") and _usable(bind):  # noqa: S104 - a comparison
        return bind
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(_PROBE)
            address = str(probe.getsockname()[0])
        except OSError:
            address = ""
    if address and _usable(address):
        return address
    try:
        found = socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET)
    except OSError:
        found = []
    return next((str(f[4][0]) for f in found if _usable(str(f[4][0]))), None)


def join_url(base: str, game: str, code: str) -> str:
    """The link a phone opens to join ``game`` with ``code``."""
    return f"{base}/?game={quote(game)}&code={quote(code)}"


class JoinLinks:
    """The public base URL, known once the HTTP port is (``start``)."""

    def __init__(self, configured: str | None, bind: str) -> None:
        self._configured = configured
        self._bind = bind
        self.base: str | None = configured

    def start(self, http_port: int) -> str:
        """Settle the base URL for the HTTP server listening on ``http_port``."""
        if self._configured is not None:
            base = self._configured
        else:
            host = lan_address(self._bind)
            if host is None:
                host = f"{socket.gethostname()}.local"
                _LOGGER.warning(
                    "no network address found for the join link; using %s (mDNS). "
                    "Set --public-url (HUB_PUBLIC_URL) to the address phones use",
                    host,
                )
            elif ipaddress.ip_address(host).version == 6:
                host = f"[{host}]"
            base = f"http://{host}:{http_port}"
            if self._bind.startswith("127.") or self._bind == "::1":
                _LOGGER.warning(
                    "the hub listens on %s only: phones cannot open %s", self._bind, base
                )
        self.base = base
        _LOGGER.info("join link: %s/?game=GAME&code=CODE", base)
        return base

    def url(self, game: str, code: str) -> str | None:
        return None if self.base is None else join_url(self.base, game, code)
