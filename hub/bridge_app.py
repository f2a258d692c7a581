"""``web-bridge`` (``hub web-bridge``): the web bridge alone, beside a hub that runs
against an external broker (``hub serve --broker``).

It reaches the broker as an MQTT client (the service's credentials, e.g. Mosquitto's
``service.url``, so that it may publish a rotated join code) and learns the games from
their retained topics; it reads the hub's data dir for history, sessions and join codes.
Phones take seats through Mosquitto's dynamic security plugin (``hub.link.dynsec``); on
a broker without it the bridge refuses player sessions, saying why.

On a NATS cluster (its service URL, with ``?callout=``) the bridge is stateless: users,
sessions and join codes are the cluster's key-value buckets, so a bridge may stand beside
every node (``--broker-node K``: its MQTT link, its key-value connection and its phones'
``/mqtt`` go to node K first) and a session it mints logs in on every node, checked by
whichever hub's auth callout answers. The phones' MQTT goes through the bridge's own
``/mqtt``, proxied to node K's MQTT port (same origin, one public port per machine).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import shutil
import signal
from contextlib import AsyncExitStack
from typing import Any

from hub.app import join_payload
from hub.auth import Acl
from hub.auth.sweeper import SessionSweeper
from hub.journals import hub_journal
from hub.link import MqttTransport
from hub.link.dynsec import DynsecSeats
from hub.protocol import DecodeError, Snapshot, Stats, Status, decode_model
from hub.protocol.broker_url import BrokerUrl
from hub.public_url import JoinLinks
from hub.settings import HubSettings
from hub.transport import TransportError
from hub.web import MIN_FREE_DISK, JournalHistory, auth_stores, login_checks, stats_metrics
from web_bridge.app import create_app, websocket_protocol
from web_bridge.ports import Bridge, Histogram, Metric, Seats, SessionsCheckedByBroker
from web_bridge.proxy import TcpProxyGateway
from web_bridge.server import HttpServer

__all__ = ["RetainedView", "serve_bridge"]

_LOGGER = logging.getLogger(__name__)


class RetainedView:
    """The hub's retained topics as last seen: snapshots, status and stats."""

    def __init__(self, settings: HubSettings) -> None:
        self._topics = settings.topics
        self._snapshots: dict[str, Snapshot] = {}
        self.status: Status | None = None
        self.stats: Stats | None = None

    @property
    def filters(self) -> tuple[str, ...]:
        return (self._topics.status, self._topics.stats, self._topics.game_state("+"))

    def feed(self, topic: str, payload: bytes) -> None:
        try:
            if topic == self._topics.status:
                self.status = decode_model(payload, Status)
            elif topic == self._topics.stats:
                self.stats = decode_model(payload, Stats)
            elif (game := self._topics.parse_game_state(topic)) is not None:
                self._snapshots[game] = decode_model(payload, Snapshot)
        except DecodeError as exc:
            _LOGGER.warning("ignored a bad retained message on %s: %s", topic, exc)

    def snapshot(self, game: str) -> Snapshot | None:
        return self._snapshots.get(game)

    async def metrics(self) -> list[Metric | Histogram]:
        """What the hub reports on ``R/stats``, as Prometheus families."""
        return [] if self.stats is None else list(stats_metrics(self.stats))


async def serve_bridge(settings: HubSettings) -> None:
    """Serve the bridge until SIGTERM/SIGINT."""
    url: BrokerUrl | None = settings.broker_url
    if url is None:
        msg = "web-bridge needs --broker mqtt://USER:PASS@HOST:PORT (the hub's broker)"
        raise ValueError(msg)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    settings.data_dir.mkdir(parents=True, exist_ok=True)  # its own, beside a NATS node
    view = RetainedView(settings)
    links = JoinLinks(settings.public_url, settings.bind)
    async with AsyncExitStack() as stack:
        stores = stack.enter_context(auth_stores(settings))
        sessions, join_codes = stores.sessions, stores.join_codes
        gate, verifier = login_checks(settings, stores.users)
        stack.enter_context(verifier)
        link = await stack.enter_async_context(
            # a client id of its own: bridges beside other nodes log in as the same user,
            # and one client id would make each take the other's connection over
            MqttTransport(
                url,
                client_id=f"tablehub-bridge-{url.username or 'anonymous'}-{secrets.token_hex(3)}",
            )
        )

        async def follow() -> None:
            async for message in link.messages():
                view.feed(message.topic, message.payload)

        seats: Seats = SessionsCheckedByBroker()  # on NATS: the callout reads the cluster's
        if url.callout is None:
            dynsec = await stack.enter_async_context(
                DynsecSeats(
                    url,
                    Acl(settings.topics),
                    sessions=sessions,
                )
            )
            sessions.on_end(dynsec.session_ended)
            seats = dynsec
        await stack.enter_async_context(SessionSweeper(sessions, settings.session_sweep_interval))
        follower = asyncio.create_task(follow(), name="retained-view")
        stack.push_async_callback(_cancel, follower)
        await link.subscribe(*view.filters)

        async def rotate_join_code(game: str) -> str:
            code = await asyncio.to_thread(join_codes.rotate, game)
            message = join_payload(game, code, links.url(game, code), seats)
            try:
                await link.publish(settings.topics.game_join(game), message, retain=True)
            except TransportError as exc:
                _LOGGER.error("join code of %s rotated but not published: %s", game, exc)  # noqa: TRY400
            return code

        def health() -> dict[str, Any]:
            free = shutil.disk_usage(settings.data_dir).free
            online = view.status is not None and view.status.state == "online"
            return {
                "broker": {"ok": link.connected},
                "state_service": {
                    "ok": online,
                    "epoch": view.status.epoch if view.status else None,
                },
                "disk": {"ok": free > MIN_FREE_DISK, "free_bytes": free},
            }

        bridge = Bridge(
            games=settings.games,
            topics=settings.topics,
            passwords=verifier,
            logins=gate,
            sessions=sessions,
            join_codes=join_codes,
            rotate_join_code=rotate_join_code,
            join_links=links,
            snapshots=view,
            history=JournalHistory(lambda: hub_journal(settings, read_only=True)),
            metrics=view,
            gateway=TcpProxyGateway(url.host, url.port),
            health=health,
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
        links.start(http.port)
        print(
            f"tablehub web-bridge ready http={settings.bind}:{http.port} broker={url}", flush=True
        )
        await stop.wait()
        _LOGGER.info("stopping the web bridge")


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
