"""``hub serve``: broker, state service and web bridge in one asyncio process.

Signals only set a flag; the drain then runs in reverse order of start: HTTP stops,
the state service finishes the commands it holds and publishes retained ``offline``,
the broker disconnects everyone and closes.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import signal
from contextlib import AsyncExitStack
from datetime import datetime
from pathlib import Path
from typing import Any

from hub import __version__
from hub.auth import Acl, LoginThrottle, Role, UserStore
from hub.auth.passwords import new_password
from hub.clock import utc_now
from hub.link import MqttTransport
from hub.protocol import Status, encode
from hub.settings import HubSettings
from hub.state.service import RoleOf, ServiceOptions, StateService
from hub.state.store import Store
from hub.transport import Transport
from web_bridge.app import create_app
from web_bridge.server import HttpServer

__all__ = [
    "FIRST_OPERATOR",
    "OPERATOR_FILE",
    "READY_FILE",
    "ensure_operator",
    "role_resolver",
    "serve",
]

_LOGGER = logging.getLogger(__name__)
READY_FILE = "ready.json"
OPERATOR_FILE = "operator.txt"
FIRST_OPERATOR = "operator"


def role_resolver(users: UserStore) -> RoleOf:
    """Roles of authenticated users; anyone else is a player (phones' session tokens)."""

    def role_of(client_id: str) -> Role:
        user = users.get(client_id)
        return user.role if user is not None else Role.PLAYER

    return role_of


def ensure_operator(users: UserStore, data_dir: Path) -> None:
    """On first start, create an operator with a random password in operator.txt (0600)."""
    if users.has_role(Role.OPERATOR):
        return
    password = new_password()
    users.add(FIRST_OPERATOR, Role.OPERATOR, password)
    path = data_dir / OPERATOR_FILE
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(password + "\n")
    _LOGGER.warning(
        "created the operator user %r; its password is in %s (mode 0600)", FIRST_OPERATOR, path
    )


def _service_options(settings: HubSettings, epoch: int, started_at: datetime) -> ServiceOptions:
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
    )


def _health(settings: HubSettings) -> dict[str, Any]:
    disk = shutil.disk_usage(settings.data_dir)
    return {
        "broker": {"ok": True},
        "state_service": {"ok": True},
        "disk": {"ok": disk.free > 10 * 1024 * 1024, "free_bytes": disk.free},
    }


async def _transport(
    stack: AsyncExitStack,
    settings: HubSettings,
    users: UserStore,
    epoch: int,
    started_at: datetime,
) -> tuple[Transport, str, int]:
    """The embedded broker's in-process link, or a client link to ``--broker``."""
    url = settings.broker_url
    if url is not None:
        offline = Status(state="offline", epoch=epoch, version=__version__, started_at=started_at)
        link = MqttTransport(
            url,
            client_id=f"tablehub-{url.username or 'service'}",
            will=(settings.topics.status, encode(offline)),
        )
        return await stack.enter_async_context(link), url.host, url.port
    from hub.broker import BrokerOptions, EmbeddedBroker  # noqa: PLC0415 - amqtt only if embedded

    auth = {
        "hub.broker.auth.HubAuthPlugin": {
            "users": users,
            "acl": Acl(settings.topics),
            "throttle": LoginThrottle(),
        }
    }
    broker = await stack.enter_async_context(
        EmbeddedBroker(BrokerOptions(bind=settings.bind, port=settings.mqtt_port, auth=auth))
    )
    return broker.transport, settings.bind, broker.port


async def serve(settings: HubSettings) -> None:
    """Run until SIGTERM/SIGINT, then drain politely."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    ready_file = settings.data_dir / READY_FILE
    ready_file.unlink(missing_ok=True)
    users = UserStore(settings.data_dir)
    ensure_operator(users, settings.data_dir)
    async with AsyncExitStack() as stack:
        store = stack.enter_context(Store(settings.data_dir))
        epoch, started_at = store.next_epoch(), utc_now()
        transport, mqtt_host, mqtt_port = await _transport(
            stack, settings, users, epoch, started_at
        )
        service = StateService(
            transport,
            store,
            _service_options(settings, epoch, started_at),
            role_resolver(users),
        )
        await stack.enter_async_context(service)
        http = await stack.enter_async_context(
            HttpServer(create_app(lambda: _health(settings)), settings.bind, settings.http_port)
        )
        ready = {
            "mqtt": f"{mqtt_host}:{mqtt_port}",
            "http": f"{settings.bind}:{http.port}",
            "mqtt_port": mqtt_port,
            "http_port": http.port,
            "epoch": service.epoch,
            "pid": os.getpid(),
        }
        tmp = ready_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(ready) + "\n")
        tmp.replace(ready_file)
        print(f"tablehub ready mqtt={ready['mqtt']} http={ready['http']}", flush=True)
        await stop.wait()
        _LOGGER.info("stopping: draining commands, publishing offline status")
    ready_file.unlink(missing_ok=True)
    _LOGGER.info("stopped")
