"""``mqtt://USER:PASS@HOST:PORT`` -> BrokerUrl: how the hub (``--broker``) and the Pi node
name a broker."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from pydantic import SecretStr

__all__ = ["BrokerUrl", "parse_broker_url"]


@dataclass(frozen=True, slots=True)
class BrokerUrl:
    host: str
    port: int
    username: str | None
    password: SecretStr | None

    def __str__(self) -> str:  # never shows the password
        user = f"{self.username}:***@" if self.username else ""
        return f"mqtt://{user}{self.host}:{self.port}"


def parse_broker_url(url: str) -> BrokerUrl:
    """Parse a broker URL; raise ValueError naming what is wrong (never the password)."""
    parts = urlsplit(url)
    if parts.scheme != "mqtt":
        msg = "the broker URL must look like mqtt://USER:PASS@HOST:PORT"
        raise ValueError(msg)
    try:
        port = parts.port or 1883
    except ValueError as exc:
        msg = "the broker URL has an invalid port"
        raise ValueError(msg) from exc
    if not parts.hostname:
        msg = "the broker URL has no host"
        raise ValueError(msg)
    return BrokerUrl(
        host=parts.hostname,
        port=port,
        username=unquote(parts.username) if parts.username else None,
        password=SecretStr(unquote(parts.password)) if parts.password else None,
    )
