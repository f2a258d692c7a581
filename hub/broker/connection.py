"""One client connection's bytes: framed on the way in, batched on the way out, watched.

amqtt 0.12.1 runs every connection through asyncio streams: a reader task doing
``asyncio.wait_for`` + awaits per packet, a task per incoming packet, and on the way out
``packet.to_stream(writer)`` + ``await writer.drain()`` under a lock for every single packet
(``ProtocolHandler._send_packet``). Here a connection is plain callbacks:

* ``TcpConnection`` is the listener's ``asyncio.Protocol``: ``data_received`` cuts packets
  with ``PacketSplitter`` and hands them to the session's handler synchronously.
* ``LinkConnection`` serves a connection that arrived elsewhere (the web bridge's WebSocket,
  amqtt's ``external``/``ws`` listeners) through a ``ByteLink``: one pump task feeds the same
  splitter, and outgoing bytes go out by ``await link.send``.
* Outgoing packets are appended to the connection's batch; ``Flusher`` writes every batch
  once per event-loop iteration (one ``transport.write`` per client however many messages
  it got in that iteration).

Limits: the CONNECT timeout and keep-alive (``LivenessTimer``), the packet size and sanity
(``PacketSplitter``), and a bound on packets queued while the client does not read (the
transport is paused): past it the connection is aborted, which the broker handles like a
dropped connection (will message, session cleanup).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections.abc import Callable
from typing import Protocol

from hub.broker.eager import start_eagerly
from hub.broker.framing import PacketSplitter, ProtocolViolation
from hub.broker.keepalive import LivenessTimer
from hub.broker.limits import Limits

__all__ = [
    "ByteLink",
    "Connection",
    "Flusher",
    "LinkConnection",
    "Packet",
    "PacketReceiver",
    "TcpConnection",
]

_LOGGER = logging.getLogger(__name__)
_monotonic = time.monotonic  # the event loop's clock (loop.time()), without the method call
_PUBACK = 0x40
_CLOSE_GRACE = 1.0
"""Seconds a closing client gets to take its last packets before the socket is cut."""
_MAX_BACKLOG = 256
"""Packets a client may have waiting for the broker before its reading is paused."""

Packet = tuple[int, bytes]
"""(first byte of the fixed header, packet body)."""


class PacketReceiver(Protocol):
    def packets_received(self, packets: list[Packet]) -> None: ...

    def acknowledged(self, pid: int) -> None:
        """A PUBACK for packet ``pid`` (the most frequent packet: it has its own path)."""


class ByteLink(Protocol):
    """A client's byte stream that arrived outside the broker's listeners."""

    @property
    def peer(self) -> tuple[str, int]: ...

    async def receive(self) -> bytes:
        """The next chunk of bytes; b"" once the client is gone."""
        ...

    async def send(self, data: bytes) -> None:
        """Send bytes; raises ConnectionError once the client is gone."""

    async def close(self) -> None: ...


class Flusher:
    """Writes the batched packets of every connection that got some, once per loop
    iteration (scheduled with ``call_soon`` when the first one arrives).

    Connections that got a direct message (one with a single recipient: a reply to a
    command) are written first: the player who acted sees the outcome before the state's
    copies to hundreds of spectators go out, which over WebSocket take ~10 µs each.
    """

    __slots__ = ("_dirty", "_loop", "_scheduled", "_urgent")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._dirty: list[Connection] = []
        self._urgent: list[Connection] = []
        self._scheduled = False

    def mark(self, connection: Connection) -> None:
        self._dirty.append(connection)
        if not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self._flush)

    def hurry(self, connection: Connection) -> None:
        """Write this (already marked) connection before the others."""
        self._urgent.append(connection)

    @property
    def pending(self) -> bool:
        return bool(self._dirty)

    def _flush(self) -> None:
        self._scheduled = False
        urgent, self._urgent = self._urgent, []
        dirty, self._dirty = self._dirty, []
        for connection in urgent:
            connection.flush()  # marked too: flushing it again below writes nothing
        for connection in dirty:
            connection.flush()


class Connection:
    """What the broker needs from a connection, whatever carries it.

    Until a receiver is attached (the CONNECT is being handled) packets are kept; the first
    one is the CONNECT (``next_packet``). ``closed`` resolves once the connection is gone.
    """

    __slots__ = (
        "_blocked",
        "_blocked_count",
        "_chunks",
        "_closing",
        "_dirty",
        "_early",
        "_early_waiter",
        "_flusher",
        "_grace",
        "_hurried",
        "_loop",
        "_max_blocked",
        "_receiver",
        "_splitter",
        "_timer",
        "aborted",
        "closed",
        "disconnect_received",
        "last_packet_at",
        "peer",
    )
    peer: tuple[str, int] | None

    def __init__(self, limits: Limits, flusher: Flusher) -> None:
        loop = asyncio.get_running_loop()
        self._loop = loop
        self._flusher = flusher
        self._splitter = PacketSplitter(limits.max_packet_size)
        self._max_blocked = limits.max_queued_messages
        self._chunks: list[bytes] = []
        self._blocked_count = 0
        self._dirty = False
        self._hurried = False
        self._blocked = False
        self._closing = False  # close() called: what was queued goes out, nothing more
        self._receiver: PacketReceiver | None = None
        self._early: list[Packet] = []
        self._early_waiter: asyncio.Future[None] | None = None
        self._grace: asyncio.TimerHandle | None = None  # cuts a closing connection
        self.last_packet_at = _monotonic()
        self.aborted = False
        self.disconnect_received = False
        """The client sent DISCONNECT: its will is not published [MQTT-3.14.4-3]."""
        self.closed: asyncio.Future[None] = loop.create_future()
        self._timer = LivenessTimer(
            connect_timeout=limits.connect_timeout,
            last_activity=self._last_activity,
            expire=self._expire,
        )

    # --- inbound ---------------------------------------------------------------------------
    def _last_activity(self) -> float:
        return self.last_packet_at

    def _received(self, data: bytes) -> None:
        if self.aborted:
            return
        receiver = self._receiver
        if (
            len(data) == 4
            and data[0] == _PUBACK
            and data[1] == 2
            and receiver is not None
            and self._splitter.idle
        ):
            # a lone PUBACK, 500 of them per state message to 500 QoS 1 phones: skip the
            # general framing (it checks nothing more about a PUBACK)
            self.last_packet_at = _monotonic()
            receiver.acknowledged((data[2] << 8) | data[3])
            return
        try:
            packets = self._splitter.feed(data)
        except ProtocolViolation as exc:
            self.abort(str(exc))
            return
        if not packets:
            return
        self.last_packet_at = _monotonic()
        if receiver is None:
            self._early += packets
            if self._early_waiter is not None and not self._early_waiter.done():
                self._early_waiter.set_result(None)
            if len(self._early) > _MAX_BACKLOG:
                self.pause_reading()
            return
        try:
            receiver.packets_received(packets)
        except Exception:  # one guard per batch of packets: a bug closes only this client
            _LOGGER.exception("closing the connection of %s: failed to handle a packet", self.peer)
            self.drop()

    async def next_packet(self) -> Packet | None:
        """The first packet not yet handed on (the CONNECT); None once the connection is gone
        (the CONNECT timeout closes it)."""
        while not self._early:
            if self.closed.done():
                return None
            self._early_waiter = self._loop.create_future()
            await asyncio.wait(
                (self._early_waiter, self.closed), return_when=asyncio.FIRST_COMPLETED
            )
            self._early_waiter = None
        return self._early.pop(0)

    def connected(self, keep_alive: int) -> None:
        """The CONNECT was read: enforce its keep-alive from now on."""
        self._timer.keep_alive(keep_alive)

    def attach(self, receiver: PacketReceiver) -> None:
        """From now on hand packets to ``receiver``, starting with those already received."""
        self._receiver = receiver
        early, self._early = self._early, []
        if early and not self.aborted:
            receiver.packets_received(early)
        self.resume_reading()

    def detach(self) -> None:
        self._receiver = None

    def pause_reading(self) -> None:
        """Stop taking bytes from the client until ``resume_reading``."""

    def resume_reading(self) -> None:
        """Take bytes from the client again."""

    # --- outbound --------------------------------------------------------------------------
    def send(self, data: bytes) -> None:
        """Queue a packet; it goes out with this loop iteration's batch."""
        if self.aborted or self._closing:
            return
        self._chunks.append(data)
        if self._blocked:
            self._blocked_count += 1
            if self._blocked_count > self._max_blocked:
                self.abort(f"more than {self._max_blocked} packets pending (not reading)")
                return
        if not self._dirty:
            self._dirty = True
            self._flusher.mark(self)

    def _resume_output(self) -> None:
        """The transport takes writes again: what queued meanwhile goes out with this
        loop iteration's batch."""
        self._blocked = False
        if self._chunks and not self._dirty:
            self._dirty = True
            self._flusher.mark(self)

    def hurry(self) -> None:
        """Write this iteration's batch before other connections' (it holds a direct
        message)."""
        if self._dirty and not self._hurried:
            self._hurried = True
            self._flusher.hurry(self)

    def take_batch(self) -> bytes | None:
        """The queued packets as one write (None if there are none), and a fresh batch."""
        self._dirty = False
        self._hurried = False
        chunks = self._chunks
        if not chunks:
            return None
        data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        chunks.clear()
        self._blocked_count = 0
        return data

    def flush(self) -> None:
        """Write the queued packets (called by the ``Flusher``)."""
        raise NotImplementedError

    @property
    def output_pending(self) -> bool:
        return bool(self._chunks) and not self.aborted

    # --- closing ---------------------------------------------------------------------------
    def abort(self, reason: str) -> None:
        """Close the connection now, without flushing: the client broke a rule."""
        if not self.aborted:
            _LOGGER.warning("closing the connection of %s: %s", self.peer, reason)
            self.drop()

    def _expire(self, reason: str) -> None:
        if not self.aborted:  # a dead client, not a broken one
            _LOGGER.info("closing the connection of %s: %s", self.peer, reason)
            self.drop()

    def drop(self) -> None:
        """Cut the connection at once (it is dead, broken, or being shut down)."""
        if self.aborted:
            return
        self.aborted = True
        self._timer.cancel()
        self._chunks.clear()
        self._cut()

    def _cut(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """Send what is queued, then close; cut after a grace period if the client does not
        take it."""
        raise NotImplementedError

    def _gone(self) -> None:
        """The transport is closed: release everything."""
        self.aborted = True
        self._timer.release()
        if self._grace is not None:
            self._grace.cancel()
            self._grace = None
        self._chunks.clear()
        self._receiver = None
        self._early.clear()
        if not self.closed.done():
            self.closed.set_result(None)


class TcpConnection(Connection, asyncio.Protocol):
    """A connection of a TCP listener, as the listener's ``asyncio.Protocol``."""

    __slots__ = ("_opened", "_transport")

    def __init__(
        self, limits: Limits, flusher: Flusher, opened: Callable[[TcpConnection], None]
    ) -> None:
        super().__init__(limits, flusher)
        self._opened = opened
        self._transport: asyncio.Transport | None = None
        self.peer = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            # the broker batches its writes itself; Nagle would only add delayed-ACK stalls
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        peer = transport.get_extra_info("peername")
        self.peer = (str(peer[0]), int(peer[1])) if peer else ("?", 0)
        self._opened(self)

    def data_received(self, data: bytes) -> None:
        self._received(data)

    def eof_received(self) -> bool:
        return False  # close the transport

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        self._gone()

    def pause_writing(self) -> None:
        self._blocked = True

    def resume_writing(self) -> None:
        self._resume_output()

    def pause_reading(self) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.pause_reading()

    def resume_reading(self) -> None:
        if self._transport is not None and not self._transport.is_closing():
            with contextlib.suppress(RuntimeError):  # not paused
                self._transport.resume_reading()

    def flush(self) -> None:
        if self._blocked or self._transport is None or self._closing:
            self._dirty = self._hurried = False
            return
        data = self.take_batch()
        if data is not None and not self.aborted:
            self._transport.write(data)

    def _cut(self) -> None:
        if self._transport is not None:
            self._transport.abort()

    def close(self) -> None:
        transport = self._transport
        if transport is None or self.aborted or self._closing or transport.is_closing():
            return
        self._closing = True
        self._timer.cancel()
        data = self.take_batch()
        if data is not None:
            transport.write(data)
        transport.close()  # after the write buffer is flushed
        self._grace = self._loop.call_later(_CLOSE_GRACE, self.drop)


class LinkConnection(Connection):
    """A connection carried by a ``ByteLink``: ``run()`` pumps it until it ends."""

    __slots__ = ("_link", "_reading", "_sender", "_sending")

    def __init__(self, link: ByteLink, limits: Limits, flusher: Flusher) -> None:
        super().__init__(limits, flusher)
        self._link = link
        self.peer = link.peer
        self._sender: asyncio.Task[None] | None = None  # a send that had to wait
        self._sending = False
        self._reading = asyncio.Event()
        self._reading.set()

    async def run(self) -> None:
        """Feed the link's bytes in until it ends or the connection is closed."""
        receive = asyncio.ensure_future(self._pump())
        try:
            await asyncio.wait((receive, self.closed), return_when=asyncio.FIRST_COMPLETED)
        finally:
            receive.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await receive
            if self._sender is not None:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(self._sender), _CLOSE_GRACE)
            with contextlib.suppress(ConnectionError, OSError):
                await self._link.close()
            self._gone()

    async def _pump(self) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            while not self.aborted:
                if not self._reading.is_set():
                    await self._reading.wait()
                data = await self._link.receive()
                if not data:
                    break
                self._received(data)
        self._finish()

    def pause_reading(self) -> None:
        self._reading.clear()

    def resume_reading(self) -> None:
        self._reading.set()

    def flush(self) -> None:
        if self._sending or not self._chunks or self.aborted:
            self._dirty = self._hurried = False
            return
        # most sends complete without waiting: no task unless one has to wait
        self._sender = start_eagerly(self._send_all())

    async def _send_all(self) -> None:
        self._sending = True
        try:
            while not self.aborted:
                data = self.take_batch()
                if data is None:
                    break
                self._blocked = True
                await self._link.send(data)
                self._blocked = False
        except (ConnectionError, OSError):
            self.drop()
        finally:
            self._blocked = False
            self._sending = False
            self._sender = None
        if self._closing:
            self._finish()

    @property
    def output_pending(self) -> bool:
        return (bool(self._chunks) or self._sending) and not self.aborted

    def _cut(self) -> None:
        self._finish()

    def _finish(self) -> None:
        """End ``run()`` (its ``finally`` closes the link)."""
        if not self.closed.done():
            self.closed.set_result(None)

    def close(self) -> None:
        if self.aborted or self.closed.done() or self._closing:
            return
        self._timer.cancel()
        self._closing = True
        if not self._sending and not self._chunks:
            self._finish()
            return
        if not self._sending and not self._dirty:
            self._dirty = True
            self._flusher.mark(self)
        self._grace = self._loop.call_later(_CLOSE_GRACE, self.drop)
