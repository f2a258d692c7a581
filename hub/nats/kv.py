"""JetStream key-value buckets of a NATS cluster, mirrored locally and usable from sync code.

``with KvCluster(servers, user, password) as kv:`` runs nats-py on a thread of its own
(its own event loop), so that the stores built on it (``hub.nats.stores``) keep the sync
interface of the file and SQLite stores and may be called from any thread, the hub's
event loop included (a call blocks its caller for one round trip to the cluster, never
on the hub's loop). ``kv.bucket(name)`` opens (or creates, with ``replicas = min(3,
nodes)``) a bucket and returns a ``Mirror``: a local copy of every key, kept current by a
KV watcher, read without I/O; writes go through the cluster, with compare-and-set on the
revision where the caller asks for it. ``Mirror.catch_up()`` waits until the copy holds
every write the cluster had acknowledged when it was called (read-your-writes across
processes, for the rare reads that must see another process's write at once).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self, TypeVar

from nats.aio.client import Client as NatsClient
from nats.errors import Error as NatsClientError
from nats.js.api import KeyValueConfig
from nats.js.errors import (
    BucketNotFoundError,
    KeyDeletedError,
    KeyNotFoundError,
    KeyWrongLastSequenceError,
)
from nats.js.kv import KeyValue

from hub.nats.client import close_quietly, connect, while_electing
from hub.nats.errors import NatsError

__all__ = ["Conflict", "Entry", "KvCluster", "Mirror"]

_LOGGER = logging.getLogger(__name__)
_T = TypeVar("_T")
CALL_TIMEOUT = 10.0
"""Seconds a store's call waits for the cluster (a node lost: nats-py reconnects)."""
_DELETES = ("DEL", "PURGE")
BUCKET_TIMEOUT = 60.0
"""Seconds opening a bucket waits for JetStream (a cluster just started elects leaders)."""
GUARD_SECONDS = 2.0
"""How often a mirror checks that its watch keeps up with the cluster."""


class Conflict(NatsError):  # noqa: N818 - a compare-and-set that lost: not a failure
    """The key's revision was not the one expected (another writer came first)."""


@dataclass(frozen=True, slots=True)
class Entry:
    value: bytes
    revision: int


class Mirror:
    """One bucket: a local copy kept by a watcher, and writes through the cluster."""

    def __init__(self, cluster: KvCluster, kv: KeyValue, stream: str) -> None:
        self._cluster = cluster
        self._kv = kv
        self._stream = stream
        self._entries: dict[str, Entry] = {}
        self._seen = 0
        """The highest stream sequence the watcher has applied."""
        self.changes = 0
        """Counts the updates applied to the copy (readers cache what they derive)."""
        self._changed = threading.Condition()
        self._task: asyncio.Task[None] | None = None
        self._watcher: KeyValue.KeyWatcher | None = None
        self._guard_task: asyncio.Task[None] | None = None

    # --- the local copy (any thread, no I/O) ---------------------------------------------
    def get(self, key: str) -> Entry | None:
        with self._changed:
            return self._entries.get(key)

    def items(self) -> list[tuple[str, Entry]]:
        with self._changed:
            return list(self._entries.items())

    def catch_up(self, timeout: float = CALL_TIMEOUT) -> None:
        """Wait until the copy holds everything the cluster holds now."""
        last = self._cluster.call(self._last_sequence)
        with self._changed:
            if not self._changed.wait_for(lambda: self._seen >= last, timeout):
                msg = f"the key-value watcher of {self._stream} is behind the cluster"
                raise NatsError(msg)

    async def _last_sequence(self) -> int:
        info = await self._cluster.js.stream_info(self._stream)
        return int(info.state.last_seq or 0)

    async def _watch(self, ready: asyncio.Future[None]) -> None:
        """Apply the bucket's updates to the copy. The initial values are gathered apart
        and swapped in whole at nats-py's end-of-initial-values marker (None), so that a
        restarted watch also forgets keys deleted while it was away."""
        self._watcher = watcher = await self._kv.watchall()
        initial: dict[str, Entry] | None = {}
        initial_seen = 0
        async for update in watcher:
            if update is None:
                if initial is not None:
                    with self._changed:
                        self._entries = initial
                        self._seen = max(self._seen, initial_seen)
                        self.changes += 1
                        self._changed.notify_all()
                    initial = None
                if not ready.done():
                    ready.set_result(None)
                continue
            revision = int(update.revision or 0)
            with self._changed:
                target = self._entries if initial is None else initial
                if update.operation in _DELETES:
                    target.pop(update.key, None)
                else:
                    target[update.key] = Entry(update.value or b"", revision)
                if initial is None:
                    self._seen = max(self._seen, revision)
                    self.changes += 1
                    self._changed.notify_all()
                else:
                    initial_seen = max(initial_seen, revision)

    async def _begin(self) -> None:
        before = await self._last_sequence()
        ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._task = asyncio.create_task(self._watch(ready), name=f"kv-watch-{self._stream}")
        done, _ = await asyncio.wait({self._task, ready}, return_when=asyncio.FIRST_COMPLETED)
        if self._task in done:
            self._task.result()  # raises the watcher's failure
        with self._changed:
            # the initial values hold everything written before the watch began, even if
            # the message of the last sequence is gone (a removed tombstone)
            self._seen = max(self._seen, before)
            self._changed.notify_all()

    async def start(self) -> None:
        await self._begin()
        self._guard_task = asyncio.create_task(self._guard(), name=f"kv-guard-{self._stream}")

    async def _guard(self) -> None:
        """Watch the watcher: nats-py's ordered consumer behind it lives on one node, and
        if that node dies the watch may fall silent. A copy that has not caught up, in one
        interval, with what the cluster held at the start of it gets a new watch."""
        behind_at: int | None = None
        while True:
            await asyncio.sleep(GUARD_SECONDS)
            try:
                last = await self._last_sequence()
            except (NatsClientError, TimeoutError) as exc:
                _LOGGER.debug("key-value guard of %s: %s", self._stream, exc)
                continue  # the cluster is away: nats-py reconnects
            with self._changed:
                seen = self._seen
            if seen >= last:
                behind_at = None
            elif behind_at is None or seen >= behind_at:
                behind_at = last
            else:
                _LOGGER.warning("the watch of %s fell silent; watching again", self._stream)
                behind_at = None
                await self._stop_watch()
                try:
                    await self._begin()
                except (NatsClientError, TimeoutError) as exc:
                    _LOGGER.warning("could not watch %s again: %s", self._stream, exc)

    async def _stop_watch(self) -> None:
        if self._watcher is not None:
            with contextlib.suppress(NatsClientError):
                await self._watcher.stop()  # type: ignore[no-untyped-call]
            self._watcher = None
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def stop(self) -> None:
        if self._guard_task is not None:
            self._guard_task.cancel()
            await asyncio.gather(self._guard_task, return_exceptions=True)
        await self._stop_watch()

    # --- writes and fresh reads (through the cluster) ---------------------------------
    def fetch(self, key: str) -> Entry | None:
        """The key's value as the cluster holds it now (not the copy)."""

        async def fetch() -> Entry | None:
            try:
                entry = await self._kv.get(key)
            except (KeyNotFoundError, KeyDeletedError):
                return None
            return Entry(entry.value or b"", int(entry.revision or 0))

        return self._cluster.call(fetch)

    def put(self, key: str, value: bytes, *, revision: int | None = None) -> int:
        """Write ``value``; with ``revision``, only if the key is still at it (0: only if
        the key does not exist). Raises ``Conflict`` otherwise. Returns the new revision."""

        async def put() -> int:
            try:
                if revision is None:
                    return int(await self._kv.put(key, value))
                if revision == 0:
                    return int(await self._kv.create(key, value))
                return int(await self._kv.update(key, value, last=revision))
            except KeyWrongLastSequenceError as exc:
                raise Conflict(str(exc)) from exc

        return self._cluster.call(put)

    def delete(self, key: str) -> None:
        async def delete() -> None:
            await self._kv.delete(key)

        self._cluster.call(delete)


class KvCluster:
    """The connection (see the module docstring). ``replicas`` defaults to min(3, nodes)."""

    def __init__(
        self,
        servers: tuple[str, ...],
        user: str,
        password: str,
        *,
        replicas: int | None = None,
        name: str = "tablehub-kv",
    ) -> None:
        self.servers = servers
        self._user = user
        self._password = password
        self.replicas = replicas or min(3, len(servers))
        self._name = name
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name=name, daemon=True)
        self._nc: NatsClient | None = None
        self._mirrors: list[Mirror] = []

    @property
    def js(self) -> Any:
        assert self._nc is not None, "the key-value cluster is not open"
        return self._nc.jetstream()

    def call(self, make: Callable[[], Awaitable[_T]], timeout: float = CALL_TIMEOUT) -> _T:
        """Run ``make()`` on the connection's loop and return its result (blocking; any
        thread but the connection's own). nats-py's failures become ``NatsError``."""
        if threading.current_thread() is self._thread:
            msg = "KvCluster.call from its own loop would deadlock"
            raise RuntimeError(msg)

        async def run() -> _T:
            return await make()

        future = asyncio.run_coroutine_threadsafe(_mapped(run()), self._loop)
        try:
            return future.result(timeout)
        except TimeoutError as exc:
            future.cancel()
            msg = f"the NATS cluster did not answer in {timeout} s"
            raise NatsError(msg) from exc

    def __enter__(self) -> Self:
        self._thread.start()
        try:
            self.call(self._connect)
        except BaseException:
            self._shut()
            raise
        return self

    async def _connect(self) -> None:
        self._nc = await connect(
            self.servers,
            user=self._user,
            password=self._password,
            name=self._name,
            logger=_LOGGER,
            what="key-value stores",
            prefer_first=True,
        )

    def bucket(self, name: str, *, history: int = 1) -> Mirror:
        """Open or create bucket ``name`` and mirror it (returns once the copy is whole)."""

        async def open_bucket() -> Mirror:
            kv = await self._open_or_create(name, history)
            mirror = Mirror(self, kv, f"KV_{name}")
            await mirror.start()
            self._mirrors.append(mirror)
            return mirror

        return self.call(open_bucket, timeout=BUCKET_TIMEOUT + CALL_TIMEOUT)

    async def _open_or_create(self, name: str, history: int) -> KeyValue:
        """The bucket, created if missing. A cluster just started has no JetStream leader
        for a few seconds (its API calls time out or answer 503): asked again until
        ``BUCKET_TIMEOUT``, so `hub serve` may start right after the nodes."""
        js = self.js

        async def open_bucket() -> KeyValue:
            kv: KeyValue
            try:
                kv = await js.key_value(name)
            except BucketNotFoundError:
                config = KeyValueConfig(bucket=name, history=history, replicas=self.replicas)
                kv = await js.create_key_value(config)
            return kv

        return await while_electing(
            open_bucket, patience=BUCKET_TIMEOUT, pause=0.5, logger=_LOGGER, what=f"bucket {name}"
        )

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._shut()

    def _shut(self) -> None:
        if not self._thread.is_alive():
            return

        async def close() -> None:
            for mirror in self._mirrors:
                await mirror.stop()
            await close_quietly(self._nc)
            # nats-py leaves its JetStream subscriptions' helper tasks behind
            others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in others:
                task.cancel()
            await asyncio.gather(*others, return_exceptions=True)

        try:
            self.call(close)
        except NatsError as exc:
            _LOGGER.warning("closing the key-value connection: %s", exc)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()


async def _mapped(coro: Coroutine[Any, Any, _T]) -> _T:
    """nats-py's errors (and timeouts) as ``NatsError``; ``Conflict`` passes."""
    try:
        return await coro
    except NatsError:
        raise
    except (NatsClientError, TimeoutError, OSError) as exc:
        msg = f"the NATS cluster's key-value store failed: {exc!r}"
        raise NatsError(msg) from exc
