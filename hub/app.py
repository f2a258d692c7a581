"""``hub serve``: broker, state service and web bridge in one asyncio process.

On a NATS cluster several may run: each answers the cluster's logins (the auth callout)
and waits as a standby (``tablehub standby ...``) until it holds the lease
(hub.nats.lease); then it takes the next epoch in the replicated journal, rebuilds every
game from it, publishes and serves (``tablehub ready ...``) until it is stopped or loses
the lease, and then goes back to standby.

Signals only set a flag; the drain then runs in reverse order of start: HTTP stops,
the state service finishes the commands it holds and publishes retained ``offline``,
the broker disconnects everyone and closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import resource
import signal
import socket
import sqlite3
from collections.abc import Callable, Iterable
from contextlib import AbstractAsyncContextManager, AsyncExitStack
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from hub import __version__
from hub.auth import (
    Acl,
    AuthError,
    JoinCodes,
    LoginGate,
    PasswordVerifier,
    Role,
    SessionEnded,
    SessionListener,
    Sessions,
    UserExistsError,
    Users,
)
from hub.auth.login import LoginCheck
from hub.auth.passwords import new_password
from hub.auth.sweeper import SessionSweeper
from hub.clock import utc_now
from hub.files import write_atomic
from hub.journals import hub_journal, point_to_journal
from hub.link import MqttTransport
from hub.link.dynsec import DynsecSeats
from hub.nats.errors import NatsError
from hub.protocol import JoinCode, Status, encode
from hub.public_url import JoinLinks
from hub.settings import HubSettings
from hub.state.errors import FencedError, StorageUnavailableError
from hub.state.journal import Journal, JournalReader
from hub.state.service import OnKick, RoleOf, ServiceOptions, StateService
from hub.state.store import SqliteJournal
from hub.transport import Transport, TransportError
from hub.web import JournalHistory, ServiceMetrics, auth_stores, health_of, login_checks
from web_bridge.app import create_app, websocket_protocol
from web_bridge.ports import Bridge, FrameGateway, MqttGateway, Seats, SessionsCheckedByBroker
from web_bridge.proxy import TcpProxyGateway
from web_bridge.server import HttpServer

if TYPE_CHECKING:
    from hub.nats.callout import AuthCallout
    from hub.nats.lease import Lease

__all__ = [
    "FIRST_OPERATOR",
    "OPERATOR_FILE",
    "READY_FILE",
    "ensure_operator",
    "instance_name",
    "join_payload",
    "role_resolver",
    "serve",
]

_LOGGER = logging.getLogger(__name__)
READY_FILE = "ready.json"
OPERATOR_FILE = "operator.txt"
FIRST_OPERATOR = "operator"
_EPOCH_TRIES = 20
_RETAKE_PAUSE = 1.0
"""Seconds a service that could not start serving waits before it competes again."""


def _always() -> bool:
    return True


def role_resolver(users: Users) -> RoleOf:
    """Roles of authenticated users; anyone else is a player (phones' session tokens)."""

    def role_of(client_id: str) -> Role:
        user = users.get(client_id)
        return user.role if user is not None else Role.PLAYER

    return role_of


def ensure_operator(users: Users, data_dir: Path) -> None:
    """On first start, create an operator with a random password in operator.txt (0600)
    (on a NATS cluster: in the data dir of the first hub that starts)."""
    if users.has_role(Role.OPERATOR):
        return
    password = new_password()
    try:
        users.add(FIRST_OPERATOR, Role.OPERATOR, password)
    except UserExistsError:  # another hub on the cluster made it a moment ago
        return
    path = data_dir / OPERATOR_FILE
    write_atomic(path, password + "\n")
    _LOGGER.warning(
        "created the operator user %r; its password is in %s (mode 0600)", FIRST_OPERATOR, path
    )


def _raise_open_file_limit(wanted: int) -> None:
    """Each client holds a socket (two through the web bridge): lift the soft limit on
    open files, often 1024, towards the hard one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    if target < wanted:
        _LOGGER.warning("open files limited to %d; fewer clients than configured fit", target)


def _service_options(
    settings: HubSettings, epoch: int, started_at: datetime, instance: str, *, guard: bool
) -> ServiceOptions:
    return ServiceOptions(
        topics=settings.topics,
        games=settings.games,
        max_rounds=settings.max_rounds,
        max_payload_bytes=settings.max_payload_bytes,
        stats_interval=settings.stats_interval,
        version=__version__,
        epoch=epoch,
        started_at=started_at,
        command_rate=settings.command_rate_limit,
        command_burst=settings.command_burst,
        default_turn_seconds=settings.default_turn_seconds,
        instance=instance,
        guard_status=guard,
    )


@dataclass(frozen=True, slots=True)
class _Link:
    """How the service and the web bridge reach the broker."""

    transport: Transport
    host: str
    port: int
    gateway: MqttGateway
    running: Callable[[], bool]
    clients_by_role: Callable[[], dict[str, int]] | None = None
    end_client: Callable[[str, str], None] | None = None
    """Close a client's connection (thread-safe): the embedded broker, or NATS's callout."""
    frames: FrameGateway | None = None
    """The embedded broker takes ``/mqtt``'s WebSocket messages straight from uvicorn."""


async def _link(
    stack: AsyncExitStack,
    settings: HubSettings,
    *,
    users: Users,
    sessions: Sessions,
    logins: tuple[LoginGate, PasswordVerifier],
    epoch: int,
    started_at: datetime,
    instance: str,
    end_client: Callable[[str, str], None] | None,
) -> _Link:
    """The embedded broker's in-process link, or a client link to ``--broker``."""
    url = settings.broker_url
    if url is not None:
        offline = Status(
            state="offline",
            epoch=epoch,
            version=__version__,
            started_at=started_at,
            instance=instance,
        )
        # The client id names the instance: standbys and the active one never share one
        # (a broker would disconnect one of two clients with the same id).
        name = url.username or "service"
        client_id = f"tablehub-{name}" if url.callout is None else f"tablehub-{name}-{instance}"
        link = MqttTransport(
            url, client_id=client_id, will=(settings.topics.status, encode(offline))
        )
        await stack.enter_async_context(link)
        return _Link(
            link,
            url.host,
            url.port,
            TcpProxyGateway(url.host, url.port),
            lambda: link.connected,
            end_client=end_client,
        )
    from hub.broker import BrokerOptions, EmbeddedBroker  # noqa: PLC0415 - amqtt only if embedded
    from hub.broker.websocket import WebSocketGateway  # noqa: PLC0415

    auth = {
        "hub.broker.auth.HubAuthPlugin": {
            "users": users,
            "acl": Acl(settings.topics),
            "gate": logins[0],
            "verifier": logins[1],
            "sessions": sessions,
        }
    }
    broker = await stack.enter_async_context(
        EmbeddedBroker(
            BrokerOptions(
                bind=settings.bind,
                port=settings.mqtt_port,
                auth=auth,
                max_connections=settings.max_connections,
                max_unauthenticated=settings.max_unauthenticated,
                connect_timeout=settings.connect_timeout,
            )
        )
    )
    gateway = WebSocketGateway(broker)
    return _Link(
        broker.transport,
        settings.bind,
        broker.port,
        gateway,
        lambda: broker.running,
        broker.clients_by_role,
        broker.end_client,
        gateway,
    )


async def _answer_nats_logins(
    stack: AsyncExitStack,
    settings: HubSettings,
    callout_file: str,
    *,
    users: Users,
    sessions: Sessions,
    logins: tuple[LoginGate, PasswordVerifier],
) -> AuthCallout:
    """On a NATS cluster (``?callout=`` in the broker URL) the hub answers its logins."""
    from hub.nats.callout import AuthCallout  # noqa: PLC0415 - nats-py only on NATS
    from hub.nats.config import read_callout  # noqa: PLC0415

    try:
        config = read_callout(Path(callout_file))
    except (OSError, ValueError) as exc:
        msg = f"cannot read the NATS callout file {callout_file}: {exc}"
        raise NatsError(msg) from exc
    check = LoginCheck(users, logins[1], sessions)
    return await stack.enter_async_context(
        AuthCallout(config, check, Acl(settings.topics), logins[0])
    )


def join_payload(game: str, code: str, url: str | None, seats: Seats) -> bytes:
    """A game's retained join code and link; empty (which clears it, so that no screen
    invites phones) where phones cannot take seats."""
    if seats.unavailable is not None:
        return b""
    return encode(JoinCode(game=game, code=code, url=url))


def _join_topics(
    settings: HubSettings, codes: JoinCodes, links: JoinLinks, seats: Seats
) -> Callable[[], Iterable[tuple[str, bytes]]]:
    """The retained join code and link of every game, for the state service to publish."""

    def join_message(game: str) -> bytes:
        code = codes.code(game)
        return join_payload(game, code, links.url(game, code), seats)

    def join_topics() -> list[tuple[str, bytes]]:
        return [(settings.topics.game_join(game), join_message(game)) for game in settings.games]

    return join_topics


def _closer(end_client: Callable[[str, str], None]) -> SessionListener:
    """An ended player session loses its connection: the session store's listener."""

    def close(ended: SessionEnded) -> None:
        end_client(ended.client_id, f"its player session was {ended.reason}")

    return close


def _revoker(sessions: Sessions) -> OnKick:
    """A kicked player's session is revoked: its connection closes, its token is refused."""

    async def revoke(client_id: str) -> None:
        try:
            if await asyncio.to_thread(sessions.revoke, client_id) is not None:
                _LOGGER.info("revoked the player session %s (kicked)", client_id)
        except (AuthError, sqlite3.Error) as exc:
            _LOGGER.error("could not revoke the session of kicked %s: %s", client_id, exc)  # noqa: TRY400

    return revoke


def instance_name(settings: HubSettings) -> str:
    """``--instance``, or this host's name and pid."""
    return settings.instance or f"{socket.gethostname()}-{os.getpid()}"


@dataclass(slots=True)
class _Shared:
    """What a hub process holds whether it is the active service or a standby."""

    settings: HubSettings
    instance: str
    journal: Journal
    users: Users
    sessions: Sessions
    join_codes: JoinCodes
    logins: tuple[LoginGate, PasswordVerifier]
    links: JoinLinks
    end_client: Callable[[str, str], None] | None
    history: Callable[[], AbstractAsyncContextManager[JournalReader]]


async def serve(settings: HubSettings) -> None:
    """Run until SIGTERM/SIGINT, then drain politely. On a NATS cluster (``?callout=``),
    wait as a standby until this instance holds the lease, serve while it does, and go
    back to standby when it loses it."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    _raise_open_file_limit(settings.max_connections + settings.ws_max_connections + 256)
    ready_file = settings.data_dir / READY_FILE
    ready_file.unlink(missing_ok=True)
    instance = instance_name(settings)
    url = settings.broker_url
    async with AsyncExitStack() as stack:
        stores = stack.enter_context(auth_stores(settings))
        users, sessions, join_codes = stores.users, stores.sessions, stores.join_codes
        ensure_operator(users, settings.data_dir)
        journal: Journal = await stack.enter_async_context(hub_journal(settings))
        point_to_journal(settings)
        gate, verifier = login_checks(settings, users)
        stack.enter_context(verifier)
        end_client = None
        if url is not None and url.callout is not None:
            callout = await _answer_nats_logins(
                stack,
                settings,
                url.callout,
                users=users,
                sessions=sessions,
                logins=(gate, verifier),
            )
            end_client = callout.end_client
            sessions.on_end(_closer(callout.end_client))
        await stack.enter_async_context(SessionSweeper(sessions, settings.session_sweep_interval))
        on_nats = url is not None and url.callout is not None

        def history() -> AbstractAsyncContextManager[JournalReader]:
            if on_nats:  # the live journal catches up with the stream itself
                return contextlib.nullcontext(journal)
            return SqliteJournal(settings.data_dir, read_only=True)  # its own connection

        shared = _Shared(
            settings=settings,
            instance=instance,
            journal=journal,
            users=users,
            sessions=sessions,
            join_codes=join_codes,
            logins=(gate, verifier),
            links=JoinLinks(settings.public_url, settings.bind),
            end_client=end_client,
            history=history,
        )
        if url is None or url.callout is None:
            await _serve_active(shared, stop, may_act=None)
        else:
            await _serve_replicated(shared, stop, url.callout)
        _LOGGER.info("stopping: draining commands, publishing offline status")
    ready_file.unlink(missing_ok=True)
    _LOGGER.info("stopped")


async def _serve_replicated(shared: _Shared, stop: asyncio.Event, callout_file: str) -> None:
    """Standby until the lease is ours, active while it is, over and over until stopped."""
    from hub.nats.config import read_callout  # noqa: PLC0415 - nats-py only on NATS
    from hub.nats.lease import Lease  # noqa: PLC0415

    url = shared.settings.broker_url
    assert url is not None
    config = read_callout(Path(callout_file))
    password = url.password.get_secret_value() if url.password else None

    def standing_by(holder: str | None) -> None:
        print(f"tablehub standby instance={shared.instance} active={holder or '?'}", flush=True)

    async with Lease(
        config.servers,
        url.username,
        password,
        instance=shared.instance,
        seconds=shared.settings.lease_seconds,
    ) as lease:
        while not stop.is_set():
            acquire = asyncio.create_task(lease.acquire(standing_by))
            stopping = asyncio.create_task(stop.wait())
            await asyncio.wait({acquire, stopping}, return_when=asyncio.FIRST_COMPLETED)
            stopping.cancel()
            if not acquire.done():
                acquire.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await acquire
                return
            try:
                await _serve_active(shared, stop, may_act=lease)
            except FencedError as exc:
                _LOGGER.warning("could not take over (another instance wrote): %s", exc)
            except (TransportError, StorageUnavailableError) as exc:
                # the cluster is electing leaders (a node died): a subscription refused,
                # the journal without a leader. Standby again, and take over once it can.
                _LOGGER.warning("cannot serve as the active service now: %s", exc)
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(stop.wait(), _RETAKE_PAUSE)
            if stop.is_set():
                return
            await lease.release()
            _LOGGER.warning("%s steps down to standby", shared.instance)
            (shared.settings.data_dir / READY_FILE).unlink(missing_ok=True)


async def _first_epoch(journal: Journal) -> int:
    """Take the next epoch; a writer that was still finishing (it lost the lease a moment
    ago) may fence the first tries off: catch up and try again."""
    for _ in range(_EPOCH_TRIES - 1):
        try:
            return await journal.next_epoch()
        except FencedError as exc:
            _LOGGER.warning("taking the epoch: %s; trying again", exc)
            await asyncio.sleep(0.05)
    return await journal.next_epoch()


async def _serve_active(shared: _Shared, stop: asyncio.Event, *, may_act: Lease | None) -> None:
    """Serve as the active service until stopped, or until the lease is lost or the journal
    fences this instance off."""
    settings = shared.settings
    sessions = shared.sessions
    async with AsyncExitStack() as stack:
        epoch, started_at = await _first_epoch(shared.journal), utc_now()
        link = await _link(
            stack,
            settings,
            users=shared.users,
            sessions=sessions,
            logins=shared.logins,
            epoch=epoch,
            started_at=started_at,
            instance=shared.instance,
            end_client=shared.end_client,
        )
        if link.end_client is not None and shared.end_client is None:
            sessions.on_end(_closer(link.end_client))
        seats: Seats = SessionsCheckedByBroker()
        if settings.broker_url is not None and settings.broker_url.callout is None:
            dynsec = DynsecSeats(
                settings.broker_url,
                Acl(settings.topics),
                sessions=sessions,
            )
            seats = await stack.enter_async_context(dynsec)
            sessions.on_end(dynsec.session_ended)
        service = StateService(
            link.transport,
            shared.journal,
            _service_options(
                settings, epoch, started_at, shared.instance, guard=may_act is not None
            ),
            role_resolver(shared.users),
            extra_retained=_join_topics(settings, shared.join_codes, shared.links, seats),
            on_kick=_revoker(sessions),
            may_act=may_act.held if may_act is not None else _always,
        )
        await stack.enter_async_context(service)
        join_codes = shared.join_codes

        async def rotate_join_code(game: str) -> str:
            code = await asyncio.to_thread(join_codes.rotate, game)
            _LOGGER.warning("join code of %s rotated", game)
            await service.publish_extra()
            return code

        gate, verifier = shared.logins
        bridge = Bridge(
            games=settings.games,
            topics=settings.topics,
            passwords=verifier,
            logins=gate,
            sessions=sessions,
            join_codes=join_codes,
            rotate_join_code=rotate_join_code,
            join_links=shared.links,
            snapshots=service,
            history=JournalHistory(shared.history),
            metrics=ServiceMetrics(service, sessions, settings.data_dir, link.clients_by_role),
            gateway=link.gateway,
            frames=link.frames,
            health=health_of(settings.data_dir, service, link.running),
            ws_max_connections=settings.ws_max_connections,
            ws_max_unauthenticated=settings.ws_max_unauthenticated,
            max_body_bytes=settings.max_body_bytes,
            seats=seats,
        )
        web_app = create_app(bridge)
        http = await stack.enter_async_context(
            HttpServer(
                web_app,
                settings.bind,
                settings.http_port,
                trusted_proxies=settings.trusted_proxies,
                ws=websocket_protocol(web_app),
            )
        )
        shared.links.start(http.port)
        await service.publish_extra()  # the join links, now that the HTTP port is known
        ready = {
            "mqtt": f"{link.host}:{link.port}",
            "http": f"{settings.bind}:{http.port}",
            "mqtt_port": link.port,
            "http_port": http.port,
            "epoch": service.epoch,
            "pid": os.getpid(),
            "instance": shared.instance,
        }
        write_atomic(settings.data_dir / READY_FILE, json.dumps(ready) + "\n", mode=0o644)
        # The line's format is the operator's contract (README); instance and epoch are in
        # ready.json and R/status.
        print(f"tablehub ready mqtt={ready['mqtt']} http={ready['http']}", flush=True)
        waits = [asyncio.create_task(stop.wait()), asyncio.create_task(service.fenced())]
        if may_act is not None:
            waits.append(asyncio.create_task(may_act.lost()))
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        for task in waits:
            task.cancel()
