"""What the web bridge needs from the hub, as Protocols the hub (``hub/app.py``) implements.

The bridge imports ``hub.protocol`` and ``hub.auth`` only; the state, the journal and the
broker reach it through these, so it can also run beside a broker it does not embed.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from hub.auth import JoinCodes, LoginGate, NewSession, PasswordVerifier, Sessions
from hub.protocol import Event, Snapshot, Topics
from hub.public_url import JoinLinks

__all__ = [
    "Bridge",
    "ByteStream",
    "FrameGateway",
    "FrameReceiver",
    "FrameSink",
    "HealthCheck",
    "Histogram",
    "HistorySource",
    "Metric",
    "MetricsSource",
    "MqttGateway",
    "Seats",
    "SessionsCheckedByBroker",
    "SnapshotSource",
]

HealthCheck = Callable[[], dict[str, Any]]
"""The hub's parts, each ``{"ok": bool, ...}``."""


class SnapshotSource(Protocol):
    def snapshot(self, game: str) -> Snapshot | None:
        """The game's current retained snapshot; None if the hub does not run the game."""


class HistorySource(Protocol):
    async def events(self, game: str, *, after: int, limit: int) -> list[Event]:
        """Up to ``limit`` events of ``game`` with version > ``after``, oldest first."""


@dataclass(frozen=True, slots=True)
class Metric:
    """One Prometheus metric family."""

    name: str
    kind: Literal["counter", "gauge"]
    help: str
    samples: tuple[tuple[Mapping[str, str], float], ...]


@dataclass(frozen=True, slots=True)
class Histogram:
    """One Prometheus histogram without labels: cumulative counts per upper bound."""

    name: str
    help: str
    buckets: tuple[tuple[float, int], ...]
    """(upper bound ``le``, observations <= it), ending with ``inf``."""
    sum: float
    count: int


class MetricsSource(Protocol):
    async def metrics(self) -> list[Metric | Histogram]: ...


class ByteStream(Protocol):
    """One client's MQTT byte stream (``WebSocketStream``)."""

    @property
    def peer(self) -> tuple[str, int]: ...

    async def receive(self) -> bytes:
        """The next chunk of bytes; b"" once the client is gone."""

    async def send(self, data: bytes) -> None:
        """Send bytes; raises ConnectionError once the client is gone."""

    async def close(self) -> None: ...


class MqttGateway(Protocol):
    """Hands a client's MQTT byte stream to the broker."""

    @property
    def max_frame_bytes(self) -> int:
        """Larger WebSocket frames are refused (close code 1009)."""

    async def serve(self, stream: ByteStream) -> None:
        """Carry the stream until either side closes it."""


class FrameSink(Protocol):
    """The lean ``/mqtt`` WebSocket (``web_bridge.ws_lean``) as the broker writes to it."""

    @property
    def peer(self) -> tuple[str, int]: ...

    def write(self, data: bytes) -> None:
        """Send ``data`` as one binary frame (dropped once the WebSocket is closing)."""

    def close(self) -> None:
        """Start the closing handshake (code 1000) after what was sent."""

    def pause_reading(self) -> None: ...

    def resume_reading(self) -> None: ...


class FrameReceiver(Protocol):
    """The broker's side of a lean ``/mqtt`` WebSocket: fed by uvicorn's protocol."""

    def received(self, data: bytes) -> None:
        """One binary message's payload."""

    def writing_paused(self) -> None: ...

    def writing_resumed(self) -> None: ...

    def lost(self) -> None:
        """The transport is gone."""


class FrameGateway(Protocol):
    """A broker that takes WebSocket messages by plain calls (the embedded one), so
    ``/mqtt`` can skip ASGI: no Starlette, no task or ``await`` per frame."""

    @property
    def max_frame_bytes(self) -> int:
        """Larger WebSocket messages are refused (close code 1009)."""

    def open_frames(self, sink: FrameSink) -> FrameReceiver:
        """A new client connection writing to ``sink``."""


class Seats(Protocol):
    """Lets a new player session log in to the broker (``hub.link.dynsec`` on Mosquitto)."""

    @property
    def unavailable(self) -> str | None:
        """Why phones cannot take seats on this broker, in words; None when they can."""

    async def grant(self, new: NewSession) -> None:
        """Let the session log in with its token; raises ``SeatError`` saying why not."""


class SessionsCheckedByBroker:
    """``Seats`` of the embedded broker, which checks the session store at every login (as
    the hub's NATS auth callout does)."""

    unavailable: str | None = None

    async def grant(self, new: NewSession) -> None:
        return None


@dataclass(frozen=True, slots=True)
class Bridge:
    """Everything ``create_app`` needs, built by the hub's composition root."""

    games: tuple[str, ...]
    topics: Topics
    passwords: PasswordVerifier
    """Operators' passwords (HTTP Basic), checked on the hub's argon2 pool."""
    logins: LoginGate
    """Admits every credential check (join codes, operator logins) per address."""
    sessions: Sessions
    join_codes: JoinCodes
    rotate_join_code: Callable[[str], Awaitable[str]]
    """Rotate the game's join code and publish the new one; returns it."""
    join_links: JoinLinks
    """The public address phones open, and the join link of a code."""
    snapshots: SnapshotSource
    history: HistorySource
    metrics: MetricsSource
    gateway: MqttGateway
    frames: FrameGateway | None = None
    """If set, ``/mqtt`` is served by ``web_bridge.ws_lean`` inside uvicorn's WebSocket
    protocol, straight into this broker; otherwise through ASGI to ``gateway``."""
    health: HealthCheck = field(default=dict)
    seats: Seats = field(default_factory=SessionsCheckedByBroker)
    ws_max_connections: int = 500
    ws_max_unauthenticated: int = 64
    """WebSockets not logged in yet (no accepted CONNACK) held at once; more are refused."""
    max_body_bytes: int = 64 * 1024
    """Larger request bodies are refused with 413."""
