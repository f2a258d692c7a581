"""``mqtt://USER:PASS@HOST:PORT`` -> BrokerUrl: how the hub (``--broker``) and the Pi node
name a broker.

A cluster is named by listing every node: ``mqtt://USER:PASS@H1:P1,H2:P2,H3:P3``; clients
connect to the first that answers and fail over to the others. ``?callout=PATH`` names the
file of a NATS cluster's auth callout (``hub nats-config`` writes it): a hub given such a URL
answers the cluster's logins itself.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from urllib.parse import parse_qs, unquote, urlsplit

from pydantic import SecretStr

__all__ = ["BrokerUrl", "parse_broker_url"]

_DEFAULT_PORT = 1883


@dataclass(frozen=True, slots=True)
class BrokerUrl:
    host: str
    """The first node's host (the only one, for a single broker)."""
    port: int
    username: str | None
    password: SecretStr | None
    nodes: tuple[tuple[str, int], ...] = ()
    """Every node, in the URL's order; empty means just (host, port)."""
    callout: str | None = None
    """The NATS auth callout's file (``?callout=``), or None."""
    rotation: int = 0
    """How many nodes ``beside`` moved from the front to the back of the URL's order."""

    @property
    def endpoints(self) -> tuple[tuple[str, int], ...]:
        """(host, port) of every node, the first one first."""
        return self.nodes or ((self.host, self.port),)

    def beside(self, node: int) -> BrokerUrl:
        """The same URL with node ``node`` (from 1) first: a process beside that node
        connects there first and fails over to the others in their order."""
        endpoints = self.endpoints
        if not 1 <= node <= len(endpoints):
            msg = f"the broker URL names {len(endpoints)} node(s), not a node {node}"
            raise ValueError(msg)
        nodes = endpoints[node - 1 :] + endpoints[: node - 1]
        return replace(
            self,
            host=nodes[0][0],
            port=nodes[0][1],
            nodes=nodes if len(nodes) > 1 else (),
            rotation=(self.rotation + node - 1) % len(nodes),
        )

    def __str__(self) -> str:  # never shows the password
        user = f"{self.username}:***@" if self.username else ""
        hosts = ",".join(
            f"[{host}]:{port}" if ":" in host else f"{host}:{port}" for host, port in self.endpoints
        )
        return f"mqtt://{user}{hosts}"


def _endpoint(text: str) -> tuple[str, int]:
    """``HOST[:PORT]`` (``[V6]:PORT`` too) -> (host, port); ValueError naming what is wrong."""
    try:
        parts = urlsplit(f"//{text}")
        port = parts.port or _DEFAULT_PORT
    except ValueError as exc:
        msg = "the broker URL has an invalid port"
        raise ValueError(msg) from exc
    if not parts.hostname:
        msg = "the broker URL has no host"
        raise ValueError(msg)
    return parts.hostname, port


def parse_broker_url(url: str) -> BrokerUrl:
    """Parse a broker URL; raise ValueError naming what is wrong (never the password)."""
    parts = urlsplit(url)
    if parts.scheme != "mqtt":
        msg = "the broker URL must look like mqtt://USER:PASS@HOST:PORT"
        raise ValueError(msg)
    userinfo, _, hosts = parts.netloc.rpartition("@")
    nodes = tuple(_endpoint(host) for host in hosts.split(","))
    username, has_password, password = userinfo.partition(":")
    callout = parse_qs(parts.query).get("callout")
    return BrokerUrl(
        host=nodes[0][0],
        port=nodes[0][1],
        username=unquote(username) if username else None,
        password=SecretStr(unquote(password)) if has_password and password else None,
        nodes=nodes if len(nodes) > 1 else (),
        callout=callout[-1] if callout else None,
    )
