"""The hub on a NATS cluster: ``hub nats-config`` writes the cluster's files (config.py);
the auth callout answers its logins from the hub's users and player sessions (callout.py,
JWTs in jwt.py, MQTT topic filters as NATS subjects in subjects.py); the state service's
journal is a JetStream stream (journal.py).

Errors::

    NatsError                 (errors.py)
"""

from hub.nats.errors import NatsError

__all__ = ["DEFAULT_BASE_PORT", "NatsError"]

DEFAULT_BASE_PORT = 14220
"""``hub nats-config``: node K listens from ``DEFAULT_BASE_PORT + 10 * (K - 1)`` on."""
