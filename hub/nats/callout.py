"""The NATS cluster's auth callout, answered by the hub.

``async with AuthCallout(config, check, acl) as callout:`` connects to the cluster as the
callout user (nats-py, failing over between the nodes by itself) and answers
``$SYS.REQ.USER.AUTH`` in a queue group, so that with several hubs attached each login gets
one answer. Each request (a JWT from the node, with the client's ``connect_opts`` and
``client_info``) is checked like a login on the embedded broker (``LoginGate`` per address,
then ``LoginCheck``: users' passwords on the argon2 pool, player session tokens); the answer
is a signed ``authorization_response`` wrapping a user JWT in the ``TABLEHUB`` account whose
``pub``/``sub`` allow lists are ``hub.auth.acl``'s grants as NATS subjects. Operators read
everything and publish their own command and presence topics (as on Mosquitto: an allow
list cannot say "anything outside R"). A player's JWT expires with its session (the node
then disconnects it). An MQTT player or display must use its username as its client id.

Given a system account user (``callout.json``), ``end_client`` disconnects a client on
every node (the session store's listener: a revoked or kicked session): it asks every node
for the client's connections (``$SYS.REQ.SERVER.PING.CONNZ``) and kicks each one
(``$SYS.REQ.SERVER.<id>.KICK``); the client's next login is refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import statistics
import time
from collections import deque
from types import TracebackType
from typing import Any, Self

import nkeys
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.errors import Error as NatsClientError

from hub.auth import (
    Acl,
    AuthError,
    Identity,
    LoginGate,
    Role,
    TooManyAttemptsError,
    VerifierBusyError,
)
from hub.auth.login import LoginCheck
from hub.nats.client import close_quietly, connect
from hub.nats.config import CalloutConfig
from hub.nats.errors import NatsError
from hub.nats.jwt import decode_claims, encode_jwt
from hub.nats.subjects import nats_permissions, nats_subject

__all__ = ["AUTH_SUBJECT", "QUEUE_GROUP", "AuthCallout", "user_claims"]

_LOGGER = logging.getLogger(__name__)
AUTH_SUBJECT = "$SYS.REQ.USER.AUTH"
QUEUE_GROUP = "tablehub-callout"
_TIMINGS = 256
_CONNZ = "$SYS.REQ.SERVER.PING.CONNZ"
_KICK = "$SYS.REQ.SERVER.{server}.KICK"
_GATHER_SECONDS = 1.0
"""How long ``end_client`` waits for every node's list of connections."""


def user_claims(
    acl: Acl, identity: Identity, *, user_nkey: str, account: str, expires: int | None
) -> dict[str, Any]:
    """The user JWT's claims for ``identity`` (pure): its permissions from ``acl``."""
    if identity.role is Role.OPERATOR:
        publish = [nats_subject(topic) for topic in acl.own_topics(identity.username)]
        permissions: dict[str, dict[str, list[str]]] = {
            "pub": {"allow": publish},
            "sub": {"allow": [">"]},
        }
    else:
        permissions = nats_permissions(acl.grants(identity))
    claims: dict[str, Any] = {
        "sub": user_nkey,
        "aud": account,
        "name": identity.username,
        "nats": {
            **permissions,
            "type": "user",
            "version": 2,
            "subs": -1,
            "data": -1,
            "payload": -1,
        },
    }
    if expires is not None:
        claims["exp"] = expires
    return claims


class AuthCallout:
    """The callout responder (see the module docstring)."""

    def __init__(self, config: CalloutConfig, check: LoginCheck, acl: Acl, gate: LoginGate) -> None:
        self._config = config
        self._check = check
        self._acl = acl
        self._gate = gate
        self._issuer = nkeys.from_seed(bytearray(config.issuer_seed.get_secret_value().encode()))
        self._nc: NatsClient | None = None
        self._system: NatsClient | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._timings: deque[float] = deque(maxlen=_TIMINGS)

    @property
    def median_seconds(self) -> float | None:
        """Median time from request to answer over the last logins (None before any)."""
        return statistics.median(self._timings) if self._timings else None

    async def _connect_system(self) -> NatsClient | None:
        user, password = self._config.system_user, self._config.system_password
        if user is None or password is None:
            return None
        return await connect(
            self._config.servers,
            user=user,
            password=password.get_secret_value(),
            name="tablehub-kicker",
            logger=_LOGGER,
            what="auth callout",
        )

    async def __aenter__(self) -> Self:
        self._loop = asyncio.get_running_loop()
        try:
            self._system = await self._connect_system()
            self._nc = await connect(
                self._config.servers,
                user=self._config.user,
                password=self._config.password.get_secret_value(),
                name="tablehub-callout",
                logger=_LOGGER,
                what="auth callout",
                disconnected=self._disconnected,
                reconnected=self._reconnected,
            )
            await self._nc.subscribe(AUTH_SUBJECT, queue=QUEUE_GROUP, cb=self._request)
            await self._nc.flush()
        except (NatsClientError, OSError) as exc:
            await self._close()
            servers = ", ".join(self._config.servers)
            msg = f"the auth callout cannot reach the NATS cluster at {servers}: {exc}"
            raise NatsError(msg) from exc
        _LOGGER.info("answering NATS logins (%s)", ", ".join(self._config.servers))
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._close()

    async def _close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for client in (self._nc, self._system):
            await close_quietly(client)
        self._nc = self._system = None

    def end_client(self, client_id: str, reason: str) -> None:
        """Disconnect MQTT client ``client_id`` on every node (thread-safe; does nothing
        without a system account user)."""
        loop = self._loop
        if loop is None or self._system is None:
            return

        def start() -> None:
            task = asyncio.create_task(self._kick(client_id, reason), name="nats-kick")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

        loop.call_soon_threadsafe(start)

    async def _kick(self, client_id: str, reason: str) -> None:
        system = self._system
        if system is None:
            return
        replies: list[dict[str, Any]] = []
        all_in = asyncio.Event()

        async def collect(msg: Msg) -> None:
            try:
                replies.append(json.loads(msg.data))
            except ValueError:
                return
            if len(replies) >= len(self._config.servers):
                all_in.set()

        query = {"account": self._config.account, "mqtt_client": client_id}
        try:
            inbox = system.new_inbox()
            listening = await system.subscribe(inbox, cb=collect)
            await system.publish(_CONNZ, json.dumps(query).encode(), reply=inbox)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(all_in.wait(), _GATHER_SECONDS)
            await listening.unsubscribe()
            for reply in replies:
                server = (reply.get("server") or {}).get("id")
                for connection in (reply.get("data") or {}).get("connections") or []:
                    if connection.get("mqtt_client") != client_id or not server:
                        continue
                    kick = json.dumps({"cid": connection["cid"]}).encode()
                    await system.request(_KICK.format(server=server), kick, timeout=2)
                    _LOGGER.info("disconnected %s on %s: %s", client_id, server, reason)
        except (NatsClientError, TimeoutError, KeyError) as exc:
            _LOGGER.warning("could not disconnect %s (%s): %s", client_id, reason, exc)

    async def _disconnected(self) -> None:
        _LOGGER.warning("auth callout disconnected from the NATS cluster; reconnecting")

    async def _reconnected(self) -> None:
        url = self._nc.connected_url if self._nc is not None else None
        _LOGGER.info("auth callout reconnected to %s", url.netloc if url else "?")

    async def _request(self, msg: Msg) -> None:
        """nats-py runs a subscription's callbacks one after the other: each request gets
        a task of its own, so one slow password check does not hold up the others."""
        task = asyncio.create_task(self._answer(msg), name="nats-callout")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _answer(self, msg: Msg) -> None:
        started = time.monotonic()
        try:
            request = decode_claims(msg.data.decode())["nats"]
            user_nkey = str(request["user_nkey"])
            server_id = str(request["server_id"]["id"])
        except (ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
            _LOGGER.warning("ignored a malformed auth callout request: %s", exc)
            return
        claims = await self._decide(request, user_nkey)
        response: dict[str, Any] = {
            "sub": user_nkey,
            "aud": server_id,
            "nats": {"type": "authorization_response", "version": 2},
        }
        if isinstance(claims, str):
            response["nats"]["error"] = claims
        else:
            response["nats"]["jwt"] = encode_jwt(claims, self._issuer)
        try:
            await msg.respond(encode_jwt(response, self._issuer).encode())
        except NatsClientError as exc:
            _LOGGER.warning("could not answer a login: %s", exc)
            return
        self._timings.append(time.monotonic() - started)

    async def _decide(self, request: dict[str, Any], user_nkey: str) -> dict[str, Any] | str:
        """The user JWT's claims, or the reason for a refusal."""
        options = request.get("connect_opts") or {}
        info = request.get("client_info") or {}
        name, password = options.get("user"), options.get("pass")
        address = str(info.get("host") or "?")
        try:
            async with self._gate.attempt(address) as attempt:
                login = await self._check.identify(name, password, address)
                if login is None:
                    delay = await attempt.refuse()
                    _LOGGER.warning(
                        "refused login as %r from %s (bad credentials; answer delayed %.2f s)",
                        name,
                        address,
                        delay,
                    )
                    return "bad user name or password"
        except (TooManyAttemptsError, VerifierBusyError) as exc:
            _LOGGER.warning("refused login as %r from %s unchecked: %s", name, address, exc)
            return "too many login attempts"
        except AuthError as exc:  # the cluster's user or session store unreachable
            _LOGGER.warning("refused login as %r from %s unchecked: %s", name, address, exc)
            return "logins cannot be checked right now"
        identity = login.identity
        client_id = info.get("mqtt_id")
        if (
            identity.role in (Role.PLAYER, Role.DISPLAY)
            and info.get("type") == "mqtt"
            and client_id != identity.username
        ):
            _LOGGER.warning(
                "refused %s %r from %s: its MQTT client id must be its username, not %r",
                identity.role,
                identity.username,
                address,
                client_id,
            )
            return "the MQTT client id must be the user name"
        expires = int(login.expires_at.timestamp()) if login.expires_at is not None else None
        return user_claims(
            self._acl,
            identity,
            user_nkey=user_nkey,
            account=self._config.account,
            expires=expires,
        )
