"""Connection lifecycle: listeners, CONNECT, login, session take-over and resumption, end.

Replaces amqtt's per-connection path (``stream_connected`` on ``asyncio.start_server``
streams -> ``_client_connected`` -> ``_initialize_client_session`` ->
``BrokerProtocolHandler.init_from_connect`` -> ``_handle_client_session`` ->
``_client_message_loop``), which costs two tasks, four waiter tasks, about 55 KB and 2 ms of
CPU per client (memory that grows with the clients served: Yakifo/amqtt#123), and whose
defects the hub used to patch one by one:

* amqtt's ``max_connections`` is a semaphore: extra clients are accepted and then wait
  without a CONNACK. Here they get CONNACK 0x03 "server unavailable". Only logged-in
  clients count: connections still sending or checking their CONNECT have their own,
  separate budget (``max_unauthenticated``; more are dropped at once), so idle sockets
  cannot lock real clients out.
* no CONNECT timeout and keep-alive never enforced (Yakifo/amqtt#308): ``LivenessTimer``.
* a clean-session CONNECT deletes the existing session of its client id *before* the login
  is checked, and the connection already using that id is not closed [MQTT-3.1.4-2] (the
  take-over of Yakifo/amqtt#89 only runs for a resumed persistent session): it stays a
  zombie. Here the login comes first, then the old connection is closed and its end handled
  (will, cleanup) before the new one takes the session.
* the first packet missing or broken left the socket open; packets amqtt refuses left
  the connection as a zombie (see ``framing``).
* on CONNECT, retained messages matching every client's filters were pushed to the new
  client (see ``retained``).

TCP listeners get ``TcpConnection`` as their ``asyncio.Protocol``; amqtt's ``ws`` and
``external`` listeners (``external_connected``) arrive through ``_client_connected`` and
run as a ``LinkConnection`` (``serve_link`` does the same for the web bridge's WebSocket).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from functools import partial
from typing import Any

from amqtt.adapters import ReaderAdapter, WriterAdapter
from amqtt.contexts import ListenerType
from amqtt.events import BrokerEvents
from amqtt.mqtt.disconnect import DisconnectPacket
from amqtt.utils import gen_client_id

from hub.broker.adapter_link import AdapterLink
from hub.broker.connection import ByteLink, Connection, Flusher, LinkConnection, TcpConnection
from hub.broker.delivery import DeliveryBroker
from hub.broker.frames import FrameConnection, FrameSink
from hub.broker.handler import HubHandler
from hub.broker.packets import Connect, MalformedPacket, connack, decode_connect
from hub.broker.session import HubSession

__all__ = ["ASSIGNED_CLIENT_ID", "GuardedConnectionsBroker"]

_LOGGER = logging.getLogger(__name__)
ASSIGNED_CLIENT_ID = "hub.assigned_client_id"
"""Set on a session whose client sent an empty client id (MQTT-3.1.3-6)."""
_CONNACK_SERVER_UNAVAILABLE = 3
_CONNACK_NOT_AUTHORIZED = 5
_TAKEOVER_WAIT = 5.0
"""Seconds a new connection waits for the end of the one it replaces (will, cleanup)."""
_SHUTDOWN_WAIT = 2.0


class GuardedConnectionsBroker(DeliveryBroker):
    """Runs every connection (TCP, WebSocket, external) with the hub's limits."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._flusher = Flusher(self._loop)
        self._connections: set[Connection] = set()  # refused and unauthenticated included
        self._runs: set[asyncio.Task[None]] = set()  # TCP and framed connections' lifecycles
        self._live: dict[str, HubHandler] = {}  # client id -> handler of its connection
        self._ended: dict[HubHandler, asyncio.Future[None]] = {}
        self._admitted = 0  # logged in
        self._pending = 0  # waiting for their CONNECT or its login check
        self._ending: set[asyncio.Task[None]] = set()  # ``end_client`` clean-ups

    # --- listeners -----------------------------------------------------------------------------
    async def _create_server_instance(
        self,
        listener_name: str,
        listener_type: ListenerType,
        address: str | None,
        port: int,
        ssl_context: ssl.SSLContext | None,
    ) -> Any:
        if listener_type != ListenerType.TCP:
            return await super()._create_server_instance(
                listener_name, listener_type, address, port, ssl_context
            )
        opened = partial(self._tcp_opened, listener_name)
        return await self._loop.create_server(
            lambda: TcpConnection(self.limits, self._flusher, opened),
            address,
            port,
            reuse_address=True,
            ssl=ssl_context,
        )

    def _tcp_opened(self, listener_name: str, connection: TcpConnection) -> None:
        run = self._loop.create_task(self._serve(listener_name, connection))
        self._runs.add(run)
        run.add_done_callback(self._runs.discard)

    async def _client_connected(
        self, listener_name: str, reader: ReaderAdapter, writer: WriterAdapter
    ) -> None:
        # amqtt's common entry of its ws and external listeners
        peer = writer.get_peer_info()
        if peer is None:  # as amqtt: no peer, no connection
            _LOGGER.warning("refusing a connection without peer information")
            with contextlib.suppress(ConnectionError, OSError):
                await writer.close()
            return
        await self.serve_link(listener_name, AdapterLink(reader, writer, peer))

    def open_frames(self, listener_name: str, sink: FrameSink) -> FrameConnection:
        """Serve a connection whose WebSocket framing is done by the caller (see
        ``frames.py``), like a TCP listener's: the caller feeds it, no pump task."""
        connection = FrameConnection(sink, self.limits, self._flusher)
        run = self._loop.create_task(self._serve(listener_name, connection))
        self._runs.add(run)
        run.add_done_callback(self._runs.discard)
        return connection

    async def serve_link(self, listener_name: str, link: ByteLink) -> None:
        """Serve one connection that arrived elsewhere, until it ends."""
        connection = LinkConnection(link, self.limits, self._flusher)
        pump = asyncio.ensure_future(connection.run())
        try:
            await self._serve(listener_name, connection)
        finally:
            connection.close()
            await pump

    # --- one connection --------------------------------------------------------------------------
    async def _serve(self, listener_name: str, connection: Connection) -> None:
        self._connections.add(connection)
        try:
            if self._pending >= self.limits.max_unauthenticated:
                _LOGGER.warning(
                    "dropping a connection from %s: %d not logged in yet (max_unauthenticated)",
                    connection.peer,
                    self._pending,
                )
                return
            await self._run_client(listener_name, connection)
        finally:
            self._connections.discard(connection)
            connection.close()

    async def _refuse(self, connection: Connection) -> None:
        _LOGGER.warning(
            "refusing a connection from %s: %d connections open (max_connections)",
            connection.peer,
            self._admitted,
        )
        connection.send(connack(False, _CONNACK_SERVER_UNAVAILABLE))

    async def _log_in(
        self, listener_name: str, connection: Connection
    ) -> tuple[Connect, HubSession] | None:
        """Read the CONNECT and authenticate it, counted apart from logged-in clients
        (``max_unauthenticated``): idle sockets cannot take the places of real clients."""
        self._pending += 1
        try:
            packet = await connection.next_packet()
            if packet is None:
                return None
            try:
                connect = decode_connect(packet[1])
            except MalformedPacket as exc:
                connection.abort(f"malformed CONNECT: {exc}")
                return None
            if connect.return_code:
                connection.send(connack(False, connect.return_code))
                return None
            connection.connected(connect.keep_alive)
            session = _new_session(connect, connection.peer)
            authenticated = await self._authenticate(session, self.listeners_config[listener_name])
        finally:
            self._pending -= 1
        if connection.closed.done():
            return None
        if not authenticated:
            connection.send(connack(False, _CONNACK_NOT_AUTHORIZED))
            return None
        return connect, session

    async def _run_client(self, listener_name: str, connection: Connection) -> None:
        logged_in = await self._log_in(listener_name, connection)
        if logged_in is None:
            return
        if self._admitted >= self.limits.max_connections:
            await self._refuse(connection)
            return
        self._admitted += 1
        try:
            await self._run_session(*logged_in, connection)
        finally:
            self._admitted -= 1

    async def _run_session(
        self, connect: Connect, session: HubSession, connection: Connection
    ) -> None:
        handler = await self._open_session(session, connect.clean_session, connection)
        if handler is None:
            return
        ended = self._loop.create_future()
        self._ended[handler] = ended
        try:
            await connection.closed
        finally:
            await self._end_session(handler, connection)
            del self._ended[handler]
            ended.set_result(None)

    async def _open_session(
        self, new: HubSession, clean: bool, connection: Connection
    ) -> HubHandler | None:
        """Take over the client id, resume or replace its session, CONNACK, go live."""
        client_id: str = new.client_id
        await self._take_over(client_id)
        if connection.closed.done():
            return None
        existing = self._sessions.get(client_id)
        present = False
        if clean:
            if existing is not None:
                await self._delete_session(client_id)
            session = new
        elif existing is not None and isinstance(existing[0], HubSession):
            session = existing[0]
            _resume(session, new)
            self._recheck_subscriptions(session)
            present = True
        else:
            session = new
        handler = HubHandler(self, session, connection, self.limits)
        self._sessions[client_id] = (session, handler)
        self._live[client_id] = handler
        session.transitions.connect()
        connection.send(connack(present, 0))
        self._fire(BrokerEvents.CLIENT_CONNECTED, client_id=client_id, client_session=session)
        handler.open()
        return handler

    async def _take_over(self, client_id: str) -> None:
        """Close the connection already using this client id [MQTT-3.1.4-2] and wait until
        its end is handled."""
        old = self._live.get(client_id)
        if old is None:
            return
        _LOGGER.info("client %s connected again: closing its previous connection", client_id)
        if old.connection is not None:
            old.connection.drop()
        ended = self._ended.get(old)
        if ended is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(ended), _TAKEOVER_WAIT)

    async def _end_session(self, handler: HubHandler, connection: Connection) -> None:
        session = handler.session
        client_id = session.client_id
        handler.close()  # deliveries from now on go to the offline queue (or nowhere)
        if self._live.get(client_id) is handler:
            del self._live[client_id]
        waiter: asyncio.Future[DisconnectPacket | None] = self._loop.create_future()
        waiter.set_result(DisconnectPacket() if connection.disconnect_received else None)
        # amqtt: the will unless DISCONNECT was received, stop the handler, state, event
        await self._handle_disconnect(session, handler, waiter)
        entry = self._sessions.get(client_id)
        if session.clean_session and entry is not None and entry[0] is session:
            # amqtt's session monitor would drop it within a second; its subscriptions are
            # over now [MQTT-3.1.2-6]
            await self._cleanup_session(client_id)

    def end_client(self, client_id: str, reason: str) -> None:
        """Take a client's login back (its player session ended): close its connection
        after what is queued for it (the will is published), and forget any persistent
        session it kept. A reconnect must log in again, and is refused."""
        handler = self._live.get(client_id)
        if handler is not None and handler.connection is not None:
            _LOGGER.info("closing the connection of %s: %s", client_id, reason)
            handler.connection.close()
        task = self._loop.create_task(self._forget(client_id, handler))
        self._ending.add(task)
        task.add_done_callback(self._ending.discard)

    async def _forget(self, client_id: str, handler: HubHandler | None) -> None:
        ended = self._ended.get(handler) if handler is not None else None
        if ended is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(ended), _TAKEOVER_WAIT)
        if client_id in self._sessions and client_id not in self._live:
            await self._delete_session(client_id)

    # --- state -------------------------------------------------------------------------------
    @property
    def output_pending(self) -> bool:
        """Packets queued for a client and not yet written."""
        return self._flusher.pending or any(c.output_pending for c in self._connections)

    async def shutdown(self) -> None:
        await super().shutdown()
        for connection in list(self._connections):  # e.g. still waiting for a CONNECT
            connection.drop()
        if self._runs:
            await asyncio.wait(set(self._runs), timeout=_SHUTDOWN_WAIT)


def _new_session(connect: Connect, peer: tuple[str, int] | None) -> HubSession:
    session = HubSession()
    if connect.client_id:
        session.client_id = connect.client_id
    else:  # [MQTT-3.1.3-6]; the auth plugin may give it the username instead
        session.client_id = gen_client_id()
        session.attributes[ASSIGNED_CLIENT_ID] = True
    session.clean_session = connect.clean_session
    session.keep_alive = connect.keep_alive
    session.username = connect.username
    session.password = connect.password
    if connect.will is not None:
        session.will_flag = True
        session.will_topic = connect.will.topic
        session.will_message = connect.will.message
        session.will_qos = connect.will.qos
        session.will_retain = connect.will.retain
    if peer is not None:
        session.remote_address, session.remote_port = peer
    return session


def _resume(session: HubSession, new: HubSession) -> None:
    """A persistent session resumed by a new connection: its will, keep-alive, credentials
    and login (identity) are the new connection's."""
    session.will_flag = new.will_flag
    session.will_topic = new.will_topic
    session.will_message = new.will_message
    session.will_qos = new.will_qos
    session.will_retain = new.will_retain
    session.keep_alive = new.keep_alive
    session.username = new.username
    session.password = new.password
    session.remote_address = new.remote_address
    session.remote_port = new.remote_port
    session.attributes = new.attributes
    session.forget_verdicts()
