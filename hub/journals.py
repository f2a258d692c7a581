"""Which journal the hub uses: the SQLite file under the data directory, or, on a NATS
cluster (a ``--broker`` URL with ``?callout=``), the replicated JetStream stream.
``hub serve``, ``hub history``, ``hub state`` and the web bridge's history API all open it
through ``hub_journal``.

A hub serving on NATS leaves ``journal.json`` (0600: it holds the broker URL with the
service's password) in its data directory, so that ``hub history --data-dir DIR`` and
``hub state`` read the stream without being given ``--broker``; a hub serving with its
SQLite journal removes it."""

from __future__ import annotations

import json
from contextlib import AbstractAsyncContextManager

from hub.files import write_atomic
from hub.protocol.broker_url import BrokerUrl, parse_broker_url
from hub.settings import HubSettings
from hub.state.errors import StorageUnavailableError
from hub.state.journal import Journal
from hub.state.store import SqliteJournal, Store

__all__ = ["POINTER_FILE", "hub_journal", "journal_place", "point_to_journal"]

POINTER_FILE = "journal.json"


def point_to_journal(settings: HubSettings) -> None:
    """Record (or forget) in the data directory where ``hub serve`` keeps its journal."""
    path = settings.data_dir / POINTER_FILE
    url = settings.broker_url
    if url is None or url.callout is None or settings.broker is None:
        path.unlink(missing_ok=True)
        return
    data = {"broker": settings.broker.get_secret_value()}
    write_atomic(path, json.dumps(data) + "\n", mode=0o600)


def _nats_url(settings: HubSettings, *, read_only: bool) -> BrokerUrl | None:
    url = settings.broker_url
    if url is not None:
        return url if url.callout is not None else None
    path = settings.data_dir / POINTER_FILE
    if not read_only or not path.exists():
        return None
    try:
        return parse_broker_url(str(json.loads(path.read_text())["broker"]))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        msg = f"{path} is unreadable ({type(exc).__name__}); remove it or pass --broker"
        raise StorageUnavailableError(msg) from None


def hub_journal(
    settings: HubSettings, *, read_only: bool = False
) -> AbstractAsyncContextManager[Journal]:
    """The hub's journal (enter it to open it); a reader follows ``journal.json``."""
    url = _nats_url(settings, read_only=read_only)
    if url is not None:
        from hub.nats.journal import cluster_journal  # noqa: PLC0415 - nats-py only on NATS

        return cluster_journal(url, read_only=read_only)
    return SqliteJournal(settings.data_dir, read_only=read_only)


def journal_place(settings: HubSettings) -> str:
    """Where the (read) journal is, for messages."""
    url = _nats_url(settings, read_only=True)
    if url is not None:
        from hub.nats.journal import STREAM  # noqa: PLC0415

        return f"the JetStream stream {STREAM} of {url}"
    return str(settings.data_dir / Store.FILENAME)
