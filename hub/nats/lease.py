"""Who is the active state service on a NATS cluster: a lease in a JetStream KV bucket.

``async with Lease(servers, user, password, instance=..., seconds=1.5) as lease:`` then
``await lease.acquire(on_standby)`` returns once this instance holds the lease;
``lease.held()`` tells whether it still may act (publish), ``await lease.lost()`` returns
when it no longer does.

The bucket ``tablehub_lease`` (replicated like the journal) keeps one key, ``active``,
whose value names the holder; the bucket's TTL (``max_age``) is the lease's length. The
holder renews it every third of that with a compare-and-set on the key's revision
(``update(last=revision)``); a standby tries to create the key (``create``: only when it
does not exist) every tenth of it. When the holder dies, its last renewal expires and a
standby's create succeeds. Why a KV lease: it needs nothing beside the cluster the hub
already runs on, it is replicated like the journal (the lease survives losing a node), and
the CAS on the revision means two instances can never both renew it.

The lease only says who *should* write; the journal's fencing (expected last sequence)
makes sure a stale holder *cannot*. And the holder stops publishing on its own clock:
``held()`` turns False once the time since its last acknowledged renewal (measured from
before it was sent, so earlier than the server's expiry) passes 80 % of the TTL, so a
paused process that wakes up after losing the lease publishes nothing before it learns it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Self

from nats.aio.client import Client as NatsClient
from nats.errors import Error as NatsClientError
from nats.js.api import KeyValueConfig, StorageType
from nats.js.errors import KeyWrongLastSequenceError, NotFoundError
from nats.js.kv import KeyValue

from hub.nats.client import close_quietly, connect
from hub.nats.errors import NatsError

__all__ = ["BUCKET", "Lease"]

_LOGGER = logging.getLogger(__name__)
BUCKET = "tablehub_lease"
_KEY = "active"
_VALID = 0.8
"""Part of the TTL the holder trusts its last renewal for."""


class Lease:
    """The active service's lease (see the module docstring)."""

    def __init__(
        self,
        servers: Sequence[str],
        user: str | None,
        password: str | None,
        *,
        instance: str,
        seconds: float,
        bucket: str = BUCKET,
    ) -> None:
        self.instance = instance
        self._servers = list(servers)
        self._user = user
        self._password = password
        self._seconds = seconds
        self._bucket = bucket
        self._nc: NatsClient | None = None
        self._kv: KeyValue | None = None
        self._revision: int | None = None
        self._valid_until = 0.0
        self._lost = asyncio.Event()
        self._renewer: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Self:
        try:
            self._nc = await connect(
                self._servers,
                user=self._user,
                password=self._password,
                name=f"tablehub-lease-{self.instance}",
                logger=_LOGGER,
                what="lease",
                reconnect_wait=0.25,
            )
            js = self._nc.jetstream(timeout=max(1.0, self._seconds))
            try:
                self._kv = await js.key_value(self._bucket)
            except NotFoundError:
                self._kv = await js.create_key_value(
                    KeyValueConfig(
                        bucket=self._bucket,
                        history=1,
                        ttl=self._seconds,
                        storage=StorageType.FILE,
                        replicas=min(3, len(self._servers)),
                    )
                )
        except (OSError, NatsClientError) as exc:
            await self._close()
            msg = f"cannot reach the lease bucket {self._bucket}: {exc}"
            raise NatsError(msg) from exc
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.release()
        await self._close()

    async def _close(self) -> None:
        nc, self._nc, self._kv = self._nc, None, None
        await close_quietly(nc)

    @property
    def _bucket_kv(self) -> KeyValue:
        if self._kv is None:
            msg = "the lease is not open"
            raise NatsError(msg)
        return self._kv

    def _value(self) -> bytes:
        return json.dumps({"instance": self.instance}).encode()

    async def holder(self) -> str | None:
        """The instance holding the lease now, None if nobody (or unreadable)."""
        try:
            entry = await self._bucket_kv.get(_KEY)
        except (NatsClientError, OSError):
            return None
        try:
            return str(json.loads(entry.value or b"{}").get("instance")) if entry.value else None
        except ValueError:
            return None

    # --- taking and keeping it -----------------------------------------------------------
    async def acquire(self, on_standby: Callable[[str | None], None]) -> None:
        """Return once this instance holds the lease; ``on_standby(holder)`` is called once
        if someone else holds it first."""
        told = False
        while True:
            sent = time.monotonic()
            try:
                self._revision = await self._bucket_kv.create(_KEY, self._value())
            except KeyWrongLastSequenceError:
                if not told:
                    on_standby(await self.holder())
                    told = True
            except (NatsClientError, OSError) as exc:
                _LOGGER.warning("lease: cannot reach the bucket: %s", exc)
            else:
                self._valid_until = sent + _VALID * self._seconds
                self._lost = asyncio.Event()
                self._renewer = asyncio.create_task(self._renew(), name="lease-renew")
                _LOGGER.info("lease: %s is the active service now", self.instance)
                return
            await asyncio.sleep(self._seconds / 10)

    def held(self) -> bool:
        """Whether this instance may still act as the active one (its own clock)."""
        return not self._lost.is_set() and time.monotonic() < self._valid_until

    async def lost(self) -> None:
        """Return when the lease is lost (or given up)."""
        await self._lost.wait()

    async def _renew(self) -> None:
        while not self._lost.is_set():
            await asyncio.sleep(self._seconds / 3)
            sent = time.monotonic()
            if sent >= self._valid_until:
                self._give_up("it lapsed before it could be renewed")
                return
            try:
                self._revision = await self._bucket_kv.update(
                    _KEY, self._value(), last=self._revision
                )
            except KeyWrongLastSequenceError:
                self._give_up("another instance took it")
                return
            except (NatsClientError, OSError) as exc:
                _LOGGER.warning("lease: renewal failed (will retry): %s", exc)
                continue
            self._valid_until = sent + _VALID * self._seconds

    def _give_up(self, why: str) -> None:
        _LOGGER.warning("lease: %s lost the lease: %s", self.instance, why)
        self._valid_until = 0.0
        self._lost.set()

    async def release(self) -> None:
        """Stop renewing; delete the key if still ours, so a standby takes over at once."""
        renewer, self._renewer = self._renewer, None
        if renewer is not None:
            renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewer
        was_held = self.held()
        self._valid_until = 0.0
        self._lost.set()
        if was_held and self._kv is not None and self._revision is not None:
            with contextlib.suppress(NatsClientError, OSError):
                await self._kv.delete(_KEY, last=self._revision)
        self._revision = None
