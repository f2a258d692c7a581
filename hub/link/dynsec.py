"""Player seats on Mosquitto, through its dynamic security plugin (Mosquitto 2.0).

``async with DynsecSeats(url, acl) as seats:`` talks to the plugin over MQTT
(``$CONTROL/dynamic-security/v1``, as the hub's service user, which ``hub
mosquitto-config`` makes the plugin's admin). ``grant`` gives a new player session a
client (username and client id both the session's client id, password its token) and a
role of its own whose ACL is generated from ``hub.auth.acl`` (Mosquitto 2.0.11's role ACLs
cannot say %u or %c, so no shared role can name a player's own topics); each role ends in
"deny everything else", so the plugin alone decides for its clients (Mosquitto's ACL file,
consulted after it, would grant every SUBSCRIBE). ``revoke`` deletes both; deleting a
client disconnects it; ``session_ended`` is the ``SessionStore.on_end`` listener that
revokes a kicked or revoked session. A client's expiry is kept in its ``textdescription``:
a sweeper deletes the clients of sessions that expired, or (given the session store) that
are no longer live there: revoked by another process, or before a restart of this one,
whose store then never sees them (Mosquitto, not the hub, checks their logins).

If the broker does not answer the plugin's commands (no plugin, or another broker), the
seats are ``unavailable`` and say why: the web bridge then refuses sessions with that.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Self

from hub.auth import Acl, Identity, NewSession, Role, SeatError, SessionEnded, Sessions
from hub.auth.acl import Grants
from hub.auth.sessions import CLIENT_ID_PREFIX
from hub.clock import utc_now
from hub.link.mqtt import MqttTransport
from hub.protocol.broker_url import BrokerUrl
from hub.transport import TransportError

__all__ = ["CONTROL_TOPIC", "RESPONSE_TOPIC", "DynsecSeats", "role_acls"]

_LOGGER = logging.getLogger(__name__)
CONTROL_TOPIC = "$CONTROL/dynamic-security/v1"
RESPONSE_TOPIC = f"{CONTROL_TOPIC}/response"
_EXPIRES = "expires_at="
_NOT_FOUND = ("Client not found", "Role not found")


def role_acls(grants: Grants) -> list[dict[str, Any]]:
    """A dynsec role's ACL for ``grants``: each grant allowed, then everything else denied."""
    allowed = [
        *({"acltype": "publishClientSend", "topic": t} for t in grants.publish),
        *({"acltype": "publishClientReceive", "topic": t} for t in grants.read),
        *({"acltype": "subscribePattern", "topic": t} for t in grants.read),
        {"acltype": "unsubscribePattern", "topic": "#"},
    ]
    denied = [
        {"acltype": kind, "topic": "#", "priority": 0, "allow": False}
        for kind in ("publishClientSend", "publishClientReceive", "subscribePattern")
    ]
    return [{**acl, "priority": 1, "allow": True} for acl in allowed] + denied


def _expiry(client: dict[str, Any]) -> datetime | None:
    text = client.get("textdescription")
    if not isinstance(text, str) or not text.startswith(_EXPIRES):
        return None
    try:
        return datetime.fromisoformat(text.removeprefix(_EXPIRES)).astimezone(UTC)
    except ValueError:
        return None


class DynsecSeats:
    """``Seats`` (``web_bridge.ports``) on a Mosquitto with the dynamic security plugin."""

    def __init__(
        self,
        url: BrokerUrl,
        acl: Acl,
        *,
        sessions: Sessions | None = None,
        timeout: float = 5.0,
        probe_timeout: float = 3.0,
        sweep_interval: float = 60.0,
    ) -> None:
        self._url = url
        self._acl = acl
        self._sessions = sessions
        self._timeout = timeout
        self._probe_timeout = probe_timeout
        self._sweep_interval = sweep_interval
        self._link = MqttTransport(url, client_id=f"tablehub-seats-{secrets.token_hex(4)}")
        self._pending: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._revoking: set[asyncio.Task[None]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._granted = asyncio.Event()
        self.unavailable: str | None = "the dynamic security plugin has not answered yet"

    async def __aenter__(self) -> Self:
        self._loop = asyncio.get_running_loop()
        await self._link.__aenter__()
        self._tasks.append(asyncio.create_task(self._read(), name="dynsec-responses"))
        try:
            await self._link.subscribe(RESPONSE_TOPIC)
            await self._call({"command": "getDefaultACLAccess"}, patience=self._probe_timeout)
        except (SeatError, TransportError):  # no answer, or the response topic refused
            self.unavailable = (
                f"the broker at {self._url.host}:{self._url.port} does not answer Mosquitto's"
                f" dynamic security commands ({CONTROL_TOPIC}), so phones cannot log in there;"
                " run Mosquitto with the plugin as `hub mosquitto-config` sets it up"
            )
            _LOGGER.warning("phones cannot take seats: %s", self.unavailable)
        else:
            self.unavailable = None
            self._tasks.append(asyncio.create_task(self._sweep(), name="dynsec-sweeper"))
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await asyncio.gather(*self._revoking, return_exceptions=True)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._link.__aexit__(exc_type, exc, tb)

    async def grant(self, new: NewSession) -> None:
        """Let the session log in with its token, as itself, until it expires."""
        if self.unavailable is not None:
            raise SeatError(self.unavailable)
        session = new.session
        who = Identity(session.client_id, Role.PLAYER)
        await self._call(
            {
                "command": "createRole",
                "rolename": session.client_id,
                "acls": role_acls(self._acl.grants(who)),
            },
            {
                "command": "createClient",
                "username": session.client_id,
                "clientid": session.client_id,
                "password": new.token,
                "textname": session.name,
                "textdescription": _EXPIRES + session.expires_at.isoformat(),
                "roles": [{"rolename": session.client_id}],
            },
        )
        self._granted.set()

    async def revoke(self, client_id: str) -> None:
        """Delete the session's client (which disconnects it) and its role; idempotent."""
        await self._call(
            {"command": "deleteClient", "username": client_id},
            {"command": "deleteRole", "rolename": client_id},
            tolerate=_NOT_FOUND,
        )

    def session_ended(self, ended: SessionEnded) -> None:
        """``SessionStore.on_end`` listener (any thread): revoke the ended session here."""
        if self._loop is not None and self.unavailable is None:
            self._loop.call_soon_threadsafe(self._revoke_later, ended.client_id)

    def _revoke_later(self, client_id: str) -> None:
        task = asyncio.create_task(self._revoke_logged(client_id), name=f"revoke-{client_id}")
        self._revoking.add(task)
        task.add_done_callback(self._revoking.discard)

    async def _revoke_logged(self, client_id: str) -> None:
        try:
            await self.revoke(client_id)
        except SeatError as exc:
            _LOGGER.warning("could not remove player session %s from Mosquitto: %s", client_id, exc)
        else:
            _LOGGER.info("player session %s ended: removed from Mosquitto", client_id)

    async def _call(
        self,
        *commands: dict[str, Any],
        patience: float | None = None,
        tolerate: tuple[str, ...] = (),
    ) -> list[dict[str, Any]]:
        loop = asyncio.get_running_loop()
        tagged = [{**command, "correlationData": secrets.token_hex(8)} for command in commands]
        waiting = [loop.create_future() for _ in tagged]
        for command, future in zip(tagged, waiting, strict=True):
            self._pending[command["correlationData"]] = future
        try:
            await self._link.publish(CONTROL_TOPIC, json.dumps({"commands": tagged}).encode())
            async with asyncio.timeout(patience or self._timeout):
                responses = await asyncio.gather(*waiting)
        except TransportError as exc:
            msg = f"the broker cannot be reached to let the phone in: {exc}"
            raise SeatError(msg) from exc
        except TimeoutError as exc:
            msg = f"Mosquitto's dynamic security plugin did not answer {commands[0]['command']}"
            raise SeatError(msg) from exc
        finally:
            for command in tagged:
                self._pending.pop(command["correlationData"], None)
        for response in responses:
            error = response.get("error")
            if error and error not in tolerate:
                msg = f"Mosquitto's dynamic security plugin refused {response['command']}: {error}"
                raise SeatError(msg)
        return responses

    async def _read(self) -> None:
        async for message in self._link.messages():
            try:
                responses = json.loads(message.payload)["responses"]
            except (ValueError, KeyError, TypeError):
                _LOGGER.warning("ignored a malformed dynamic security response")
                continue
            for response in responses if isinstance(responses, list) else ():
                future = self._pending.get(str(response.get("correlationData")))
                if future is not None and not future.done():
                    future.set_result(response)

    async def _sweep(self) -> None:
        """Delete expired players' clients; wake at the next expiry (or a new grant)."""
        while True:
            wait = self._sweep_interval
            try:
                wait = min(wait, await self._delete_expired())
            except SeatError as exc:
                _LOGGER.warning("could not sweep expired player sessions: %s", exc)
            self._granted.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(wait, 0.05)):
                    await self._granted.wait()

    async def _delete_expired(self) -> float:
        """Revoke every ended player session's client; seconds until the next expiry."""
        (listing,) = await self._call({"command": "listClients", "verbose": True})
        # read after the listing: a session is in the store before its client is granted
        live = None
        if self._sessions is not None:
            live = {session.client_id for session in await asyncio.to_thread(self._sessions.live)}
        now, wait = utc_now(), self._sweep_interval
        for client in listing.get("data", {}).get("clients", []):
            name, expires_at = client.get("username"), _expiry(client)
            if not isinstance(name, str) or not name.startswith(CLIENT_ID_PREFIX):
                continue
            if expires_at is None or expires_at <= now or (live is not None and name not in live):
                await self.revoke(name)
                _LOGGER.info("player session %s ended: removed from Mosquitto", name)
            else:
                wait = min(wait, (expires_at - now).total_seconds())
        return wait
