"""The hub's side of the web bridge's Protocols (``web_bridge.ports``): history from the
journal (read-only, its own connection), metrics from the service, broker and journal.

Kept apart from the bridge so that the bridge never imports ``hub.state`` or the broker.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
from collections.abc import Callable, Iterator
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hub.auth import (
    JoinCodes,
    JoinCodeStore,
    LoginGate,
    LoginThrottle,
    PasswordVerifier,
    Role,
    Sessions,
    SessionStore,
    Users,
    UserStore,
)
from hub.protocol import Event, Stats
from hub.settings import HubSettings
from hub.state.journal import JournalReader
from hub.state.service import StateService
from hub.state.store import Store
from web_bridge.ports import Histogram, Metric

__all__ = [
    "AuthStores",
    "JournalHistory",
    "ServiceMetrics",
    "auth_stores",
    "health_of",
    "login_checks",
    "session_store",
    "stats_metrics",
]

MIN_FREE_DISK = 10 * 1024 * 1024
ClientsByRole = Callable[[], dict[str, int]]


def stats_metrics(stats: Stats) -> list[Metric]:
    """The figures of ``R/stats`` as Prometheus families (``hub serve`` and ``web-bridge``)."""
    return [
        Metric(
            "tablehub_commands_total",
            "counter",
            "Commands since the service started, by game and result",
            tuple(
                ({"game": game, "result": result}, float(getattr(counters, result)))
                for game, counters in sorted(stats.games.items())
                for result in ("accepted", "rejected")
            ),
        ),
        Metric(
            "tablehub_presence_online",
            "gauge",
            "Clients whose retained presence is online",
            (({}, float(stats.clients_connected)),),
        ),
        Metric(
            "tablehub_epoch",
            "gauge",
            "The state service's epoch (starts so far)",
            (({}, float(stats.epoch)),),
        ),
    ]


def login_checks(settings: HubSettings, users: Users) -> tuple[LoginGate, PasswordVerifier]:
    """The gate every credential check passes (HTTP and MQTT share its throttle) and the
    bounded argon2 pool (enter it before use)."""
    throttle = LoginThrottle(base=settings.login_throttle_base, cap=settings.login_throttle_cap)
    verifier = PasswordVerifier(
        users, workers=settings.password_check_workers, max_pending=settings.password_checks_max
    )
    return LoginGate(throttle), verifier


class JournalHistory:
    """``HistorySource`` over the journal: ``reader()`` opens it for each request (SQLite:
    a read-only connection; JetStream: the hub's own journal, which catches up)."""

    def __init__(self, reader: Callable[[], AbstractAsyncContextManager[JournalReader]]) -> None:
        self._reader = reader

    async def events(self, game: str, *, after: int, limit: int) -> list[Event]:
        async with self._reader() as journal:
            entries = await journal.entries(game, after=after, limit=limit)
        return [entry.event for entry in entries]


class ServiceMetrics:
    """``MetricsSource``: everything counted by the parts that own the numbers."""

    def __init__(
        self,
        service: StateService,
        sessions: Sessions,
        data_dir: Path,
        clients_by_role: ClientsByRole | None,
    ) -> None:
        self._service = service
        self._sessions = sessions
        self._data_dir = data_dir
        self._clients_by_role = clients_by_role

    def _journal(self, games: list[str]) -> tuple[dict[str, int], int]:
        with Store(self._data_dir, read_only=True) as store:
            counts = {game: store.count(game) for game in games}
        path = self._data_dir / Store.FILENAME
        size = sum(
            p.stat().st_size for p in (path, path.with_name(path.name + "-wal")) if p.exists()
        )
        return counts, size

    async def metrics(self) -> list[Metric | Histogram]:
        stats = self._service.stats()
        latency = self._service.latency()
        counts, size = await asyncio.to_thread(self._journal, sorted(stats.games))
        sessions = await asyncio.to_thread(self._sessions.active)
        families: list[Metric | Histogram] = [
            *stats_metrics(stats),
            Histogram(
                "tablehub_command_latency_seconds",
                "Command received to its state, event and reply published, journal commit included",
                latency.buckets,
                latency.sum,
                latency.count,
            ),
            Metric(
                "tablehub_commands_rejected_total",
                "counter",
                "Rejected commands since the service started, by error code",
                tuple(
                    ({"code": code.value}, float(n))
                    for code, n in sorted(self._service.rejections().items())
                ),
            ),
            Metric(
                "tablehub_journal_entries",
                "gauge",
                "Accepted commands in the journal, by game",
                tuple(({"game": game}, float(n)) for game, n in counts.items()),
            ),
            Metric(
                "tablehub_journal_bytes",
                "gauge",
                "Size of the journal on disk (database and write-ahead log)",
                (({}, float(size)),),
            ),
            Metric(
                "tablehub_player_sessions",
                "gauge",
                "Player sessions that have not expired",
                (({}, float(sessions)),),
            ),
        ]
        if self._clients_by_role is not None:
            clients = {role.value: 0 for role in Role if role is not Role.SERVICE}
            clients |= self._clients_by_role()
            families.append(
                Metric(
                    "tablehub_clients_connected",
                    "gauge",
                    "Clients connected to the embedded broker, by role",
                    tuple(({"role": role}, float(n)) for role, n in sorted(clients.items())),
                )
            )
        return families


def health_of(
    data_dir: Path, service: StateService, broker_running: Callable[[], bool]
) -> Callable[[], dict[str, Any]]:
    def health() -> dict[str, Any]:
        disk = shutil.disk_usage(data_dir)
        return {
            "broker": {"ok": broker_running()},
            "state_service": {"ok": service.running, "epoch": service.epoch},
            "disk": {"ok": disk.free > MIN_FREE_DISK, "free_bytes": disk.free},
        }

    return health


def session_store(settings: HubSettings) -> SessionStore:
    """The player session store of the settings' data dir, with their lifetime and caps."""
    return SessionStore(
        settings.data_dir,
        ttl=settings.session_ttl,
        max_per_game=settings.max_sessions_per_game,
        max_per_address=settings.max_sessions_per_address,
    )


@dataclass(frozen=True, slots=True)
class AuthStores:
    users: Users
    sessions: Sessions
    join_codes: JoinCodes


@contextlib.contextmanager
def auth_stores(settings: HubSettings) -> Iterator[AuthStores]:
    """Users, player sessions and join codes: in the NATS cluster's key-value buckets when
    the broker URL is a cluster's service URL (``?callout=``), else in the data dir."""
    url = settings.broker_url
    if url is not None and url.callout is not None:
        from hub.nats.stores import cluster_stores  # noqa: PLC0415 - nats-py only on NATS

        with cluster_stores(
            url,
            session_ttl=settings.session_ttl,
            max_sessions_per_game=settings.max_sessions_per_game,
            max_sessions_per_address=settings.max_sessions_per_address,
            join_code_digits=settings.join_code_digits,
            join_code_max_failures=settings.join_code_max_failures,
        ) as stores:
            yield AuthStores(stores.users, stores.sessions, stores.join_codes)
        return
    with session_store(settings) as sessions:
        yield AuthStores(
            UserStore(settings.data_dir),
            sessions,
            JoinCodeStore(
                settings.data_dir,
                digits=settings.join_code_digits,
                rotate_after=settings.join_code_max_failures,
            ),
        )
