"""A connection whose bytes arrive and leave as WebSocket messages framed by someone else.

The web bridge's lean ``/mqtt`` path (``web_bridge.ws_lean``) parses the WebSocket itself
inside uvicorn's protocol and hands each binary message's payload to ``received``; what the
broker sends goes out through the ``FrameSink`` as one binary frame per ``Flusher`` batch.
Like ``TcpConnection`` this is plain callbacks: no pump task, no ``await`` per message
(``LinkConnection`` serves the same broker through an async ``ByteLink``).
"""

from __future__ import annotations

from typing import Protocol

from hub.broker.connection import Connection, Flusher
from hub.broker.limits import Limits

__all__ = ["FrameConnection", "FrameSink"]


class FrameSink(Protocol):
    """The WebSocket as the broker writes to it (the web bridge's uvicorn protocol)."""

    @property
    def peer(self) -> tuple[str, int]: ...

    def write(self, data: bytes) -> None:
        """Send ``data`` as one binary frame (dropped once the WebSocket is closing)."""

    def close(self) -> None:
        """Start the closing handshake (code 1000) after what was sent."""

    def pause_reading(self) -> None: ...

    def resume_reading(self) -> None: ...


class FrameConnection(Connection):
    """A broker connection over a ``FrameSink``; the sink's owner calls ``received``,
    ``writing_paused``/``writing_resumed`` and, once the transport is gone, ``lost``."""

    __slots__ = ("_sink",)

    def __init__(self, sink: FrameSink, limits: Limits, flusher: Flusher) -> None:
        super().__init__(limits, flusher)
        self._sink = sink
        self.peer = sink.peer

    # --- from the sink's owner ---------------------------------------------------------------
    def received(self, data: bytes) -> None:
        self._received(data)

    def writing_paused(self) -> None:
        self._blocked = True

    def writing_resumed(self) -> None:
        self._resume_output()

    def lost(self) -> None:
        self._gone()

    # --- Connection --------------------------------------------------------------------------
    def pause_reading(self) -> None:
        if not self.aborted:
            self._sink.pause_reading()

    def resume_reading(self) -> None:
        if not self.aborted:
            self._sink.resume_reading()

    def flush(self) -> None:
        if self._blocked or self._closing or self.aborted:
            self._dirty = self._hurried = False
            return
        data = self.take_batch()
        if data is not None:
            self._sink.write(data)

    def _cut(self) -> None:
        # a WebSocket is ended politely even when the broker drops the client (as the
        # ByteLink path did): a close frame, then the transport is cut by the sink's timer
        self._sink.close()
        self._gone()

    def close(self) -> None:
        if self.aborted or self._closing:
            return
        self._closing = True
        self._timer.cancel()
        data = self.take_batch()
        if data is not None:
            self._sink.write(data)
        self._sink.close()
        self._gone()
