"""The hub on a NATS cluster: ``hub nats-config`` writes the cluster's files (config.py);
users, player sessions and join codes live in the cluster's key-value buckets (stores.py,
over the watch-mirrored buckets of kv.py); the auth callout answers logins from them
(callout.py, JWTs in jwt.py, MQTT topic filters as NATS subjects in subjects.py); the state
service's journal is a JetStream stream (journal.py) and the active service holds a lease
(lease.py).

Errors::

    NatsError                 (errors.py)
    └── Conflict              a compare-and-set lost to another writer (kv.py)
"""

from hub.nats.errors import NatsError

__all__ = ["DEFAULT_BASE_PORT", "NatsError"]

DEFAULT_BASE_PORT = 14220
"""``hub nats-config``: node K listens from ``DEFAULT_BASE_PORT + 10 * (K - 1)`` on."""
