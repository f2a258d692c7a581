"""Resource limits the embedded broker enforces on every connection.

amqtt 0.12.1 has none of them: no CONNECT timeout, no maximum packet size, unbounded
per-client queues, and ``max_connections`` makes extra clients wait instead of refusing them.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "DEFAULT_ACK_TIMEOUT",
    "DEFAULT_CONNECT_TIMEOUT",
    "DEFAULT_MAX_CONNECTIONS",
    "DEFAULT_MAX_PACKET_SIZE",
    "DEFAULT_MAX_QUEUED_MESSAGES",
    "DEFAULT_MAX_UNAUTHENTICATED",
    "Limits",
]

DEFAULT_ACK_TIMEOUT = 5.0
DEFAULT_CONNECT_TIMEOUT = 10.0
DEFAULT_MAX_PACKET_SIZE = 64 * 1024
DEFAULT_MAX_QUEUED_MESSAGES = 1000
DEFAULT_MAX_CONNECTIONS = 1000
DEFAULT_MAX_UNAUTHENTICATED = 256


@dataclass(frozen=True, slots=True)
class Limits:
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT
    """Seconds a new connection may take to send a complete CONNECT packet."""
    max_packet_size: int = DEFAULT_MAX_PACKET_SIZE
    """Largest accepted remaining length (bytes after the fixed header) of an inbound packet."""
    max_queued_messages: int = DEFAULT_MAX_QUEUED_MESSAGES
    """Per client: packets waiting while it does not read (the socket is full; more closes
    the connection), QoS 1/2 deliveries it has not acknowledged (more are dropped until it
    catches up; see ``ack_timeout``), and QoS 1/2 messages kept while a persistent session
    is offline (more are dropped)."""
    ack_timeout: float = DEFAULT_ACK_TIMEOUT
    """Seconds without any acknowledgement after which a client at its bound of
    unacknowledged deliveries is closed (it stopped reading), not just skipped."""
    max_connections: int = DEFAULT_MAX_CONNECTIONS
    """Logged-in client connections over all listeners; more are refused (CONNACK 0x03)."""
    max_unauthenticated: int = DEFAULT_MAX_UNAUTHENTICATED
    """Connections not logged in yet (waiting for or checking their CONNECT); more are
    closed at once. They count apart from ``max_connections``."""
