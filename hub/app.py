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
from typing import Any

from hub import __version__
from hub.broker import BrokerOptions, EmbeddedBroker
from hub.settings import HubSettings
from hub.state.model import Role
from hub.state.service import RoleOf, ServiceOptions, StateService
from hub.state.store import Store
from web_bridge.app import create_app
from web_bridge.server import HttpServer

__all__ = ["READY_FILE", "role_resolver", "serve"]

_LOGGER = logging.getLogger(__name__)
READY_FILE = "ready.json"


def role_resolver(settings: HubSettings) -> RoleOf:
    """Roles from configured client ids (until users are authenticated by the broker)."""
    operators, displays = frozenset(settings.operators), frozenset(settings.displays)

    def role_of(client_id: str) -> Role:
        if client_id in operators:
            return Role.OPERATOR
        if client_id in displays:
            return Role.DISPLAY
        return Role.PLAYER

    return role_of


def _service_options(settings: HubSettings) -> ServiceOptions:
    return ServiceOptions(
        topics=settings.topics,
        games=settings.games,
        max_rounds=settings.max_rounds,
        max_payload_bytes=settings.max_payload_bytes,
        stats_interval=settings.stats_interval,
        version=__version__,
    )


def _health(settings: HubSettings) -> dict[str, Any]:
    disk = shutil.disk_usage(settings.data_dir)
    return {
        "broker": {"ok": True},
        "state_service": {"ok": True},
        "disk": {"ok": disk.free > 10 * 1024 * 1024, "free_bytes": disk.free},
    }


async def serve(settings: HubSettings) -> None:
    """Run until SIGTERM/SIGINT, then drain politely."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    ready_file = settings.data_dir / READY_FILE
    ready_file.unlink(missing_ok=True)
    async with AsyncExitStack() as stack:
        broker = await stack.enter_async_context(
            EmbeddedBroker(BrokerOptions(bind=settings.bind, port=settings.mqtt_port))
        )
        service = StateService(
            broker.transport,
            Store(settings.data_dir),
            _service_options(settings),
            role_resolver(settings),
        )
        await stack.enter_async_context(service)
        http = await stack.enter_async_context(
            HttpServer(create_app(lambda: _health(settings)), settings.bind, settings.http_port)
        )
        ready = {
            "mqtt": f"{settings.bind}:{broker.port}",
            "http": f"{settings.bind}:{http.port}",
            "mqtt_port": broker.port,
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
