"""``hub nats-config``: a ready NATS cluster of N nodes, as files.

Writes into OUT: ``nodeK/nats.conf`` per node (server name, cluster routes, JetStream store
``nodeK/jetstream``, MQTT and WebSocket listeners, accounts, the auth callout), the
callout's file ``callout.json`` (the NATS addresses, the callout user and the issuer's
seed) and ``cluster.json`` (what tools and tests read, the ``service_url`` that ``hub serve
--broker`` takes). Everything holding a secret is 0600. A node starts with
``nats-server -c OUT/nodeK/nats.conf``; no config reload is ever needed: users and players
are answered at runtime by the callout (a reload would delete retained messages of
publishers that are not users of the file, ``mqttCheckPubRetainedPerms`` in nats-server).

Each node listens on ``bind``: one address for all (one machine), or one per node
(``H1,H2,H3``: node K on machine K). Node K (from 1) uses four ports from
``base_port + 10 * (K - 1)`` on: NATS clients, MQTT, MQTT over WebSocket (``/mqtt``),
cluster routes. The accounts: ``TABLEHUB`` (JetStream; the
hub's clients: the service user from the file, everyone else through the callout),
``AUTH`` (the callout's user), ``SYS`` (the system account).
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path
from urllib.parse import quote

import nkeys
from pydantic import BaseModel, ConfigDict, SecretStr

from hub.auth import SERVICE_USER
from hub.auth.passwords import new_password
from hub.files import write_atomic
from hub.nats import DEFAULT_BASE_PORT

__all__ = [
    "ACCOUNT",
    "CALLOUT_FILE",
    "CALLOUT_USER",
    "CLUSTER_FILE",
    "CalloutConfig",
    "Cluster",
    "NodeInfo",
    "node_config",
    "read_callout",
    "write_cluster",
]

ACCOUNT = "TABLEHUB"
CALLOUT_USER = "auth"
SYSTEM_USER = "sys"
CALLOUT_FILE = "callout.json"
CLUSTER_FILE = "cluster.json"
CONFIG_FILE = "nats.conf"
CLUSTER_NAME = "tablehub"
_PORTS_PER_NODE = 10
CALLOUT_TIMEOUT_S = 10
_RANDOM_BASES = range(10000, 32000, 10)
"""Where ``base_port=0`` picks (tests): NATS cannot report an ephemeral MQTT port. Below
Linux's ephemeral range (32768-60999 by default): a port in it can be taken by any
outgoing connection while a node is down, and a client retrying a dead node's port there
can even connect to itself (TCP simultaneous open), so the node could not restart on it."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class NodeInfo(_Frozen):
    name: str
    config: str
    """Absolute path of the node's nats.conf."""
    mqtt: str
    """HOST:PORT"""
    websocket: str
    """ws://HOST:PORT/mqtt"""
    cluster: str | None
    """HOST:PORT of its cluster routes (None for a single node)."""


class Cluster(_Frozen):
    """``cluster.json``."""

    nodes: tuple[NodeInfo, ...]
    service_url: str
    """``hub serve --broker`` takes it: every node's MQTT address and the callout file."""


class CalloutConfig(_Frozen):
    """``callout.json`` (0600): how the hub's callout reaches the cluster and signs."""

    servers: tuple[str, ...]
    """nats://HOST:PORT of every node."""
    user: str
    password: SecretStr
    issuer_seed: SecretStr
    """The account nkey seed the nodes trust as the callout's issuer."""
    account: str = ACCOUNT
    """The account the callout puts its users in."""
    system_user: str | None = None
    system_password: SecretStr | None = None
    """A user of the system account: the hub disconnects ended player sessions with it."""


def _quote(text: str) -> str:
    return json.dumps(text)  # a NATS config string: JSON's quoting is accepted


def node_config(
    index: int,
    nodes: tuple[NodeInfo, ...],
    *,
    listen: str,
    store_dir: Path,
    passwords: dict[str, str],
    issuer: str,
) -> str:
    """Node ``index``'s nats.conf (pure); ``listen`` is its HOST:PORT for NATS clients."""
    node = nodes[index]
    lines = [
        "# tablehub NATS node (hub nats-config): start with nats-server -c THIS_FILE",
        "# never reload it (SIGHUP): a reload deletes players' retained messages",
        f"server_name: {_quote(node.name)}",
        f"listen: {_quote(listen)}",
        f"jetstream {{ store_dir: {_quote(str(store_dir))} }}",
    ]
    if node.cluster is not None:
        routes = ", ".join(_quote(f"nats://{n.cluster}") for n in nodes if n.cluster)
        lines += [
            "cluster {",
            f"  name: {CLUSTER_NAME}",
            f"  listen: {_quote(node.cluster)}",
            f"  routes: [ {routes} ]",
            "}",
        ]
    ws = node.websocket.removeprefix("ws://").removesuffix("/mqtt")
    lines += [
        f"mqtt {{ listen: {_quote(node.mqtt)} }}",
        f"websocket {{ listen: {_quote(ws)}, no_tls: true }}",
        "accounts {",
        f"  AUTH {{ users: [ {{ user: {CALLOUT_USER},"
        f" password: {_quote(passwords[CALLOUT_USER])} }} ] }}",
        f"  {ACCOUNT} {{",
        "    jetstream: enabled",
        f"    users: [ {{ user: {SERVICE_USER}, password: {_quote(passwords[SERVICE_USER])} }} ]",
        "  }",
        f"  SYS {{ users: [ {{ user: {SYSTEM_USER},"
        f" password: {_quote(passwords[SYSTEM_USER])} }} ] }}",
        "}",
        "system_account: SYS",
        "authorization {",
        # how long a node waits for the hub's callout to answer a login (nats-server's
        # default, 2 s, refused logins on a busy 2-core machine: argon2 under load)
        f"  timeout: {CALLOUT_TIMEOUT_S}",
        "  auth_callout {",
        f"    issuer: {issuer}",
        f"    auth_users: [ {CALLOUT_USER}, {SERVICE_USER}, {SYSTEM_USER} ]",
        "    account: AUTH",
        "  }",
        "}",
    ]
    return "\n".join(lines) + "\n"


def _nodes(out: Path, count: int, bind: str, base_port: int) -> tuple[NodeInfo, ...]:
    nodes = []
    for k in range(count):
        host = _host(bind, k)
        port = base_port + _PORTS_PER_NODE * k
        nodes.append(
            NodeInfo(
                name=f"node{k + 1}",
                config=str((out / f"node{k + 1}" / CONFIG_FILE).resolve()),
                mqtt=f"{host}:{port + 1}",
                websocket=f"ws://{host}:{port + 2}/mqtt",
                cluster=f"{host}:{port + 3}" if count > 1 else None,
            )
        )
    return tuple(nodes)


def _host(bind: str, index: int) -> str:
    """Node ``index``'s address: ``bind`` is one for all, or one per node (``H1,H2,H3``)."""
    hosts = bind.split(",")
    host = hosts[index] if len(hosts) > 1 else hosts[0]
    return f"[{host}]" if ":" in host else host


def _nats_listen(bind: str, base_port: int, index: int) -> str:
    return f"{_host(bind, index)}:{base_port + _PORTS_PER_NODE * index}"


def write_cluster(
    out: Path, *, count: int, bind: str = "127.0.0.1", base_port: int = DEFAULT_BASE_PORT
) -> Cluster:
    """Write every node's config, callout.json and cluster.json into ``out``; returns the
    cluster. ``base_port`` 0 picks a random one (ports may then be taken: retry)."""
    if count < 1:
        msg = "a cluster has at least one node"
        raise ValueError(msg)
    if len(bind.split(",")) not in (1, count):
        msg = f"--bind takes one address, or one per node ({count})"
        raise ValueError(msg)
    if base_port == 0:
        base_port = random.choice(_RANDOM_BASES)  # noqa: S311 - not a secret
    if not 0 < base_port <= 65535 - _PORTS_PER_NODE * count:
        msg = f"base port {base_port} leaves no room for {count} nodes"
        raise ValueError(msg)
    out = out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    os.chmod(out, 0o700)
    nodes = _nodes(out, count, bind, base_port)
    passwords = {name: new_password() for name in (CALLOUT_USER, SERVICE_USER, SYSTEM_USER)}
    seed = nkeys.encode_seed(os.urandom(32), nkeys.PREFIX_BYTE_ACCOUNT)
    issuer = nkeys.from_seed(bytearray(seed)).public_key.decode()
    for index, node in enumerate(nodes):
        node_dir = Path(node.config).parent
        text = node_config(
            index,
            nodes,
            listen=_nats_listen(bind, base_port, index),
            store_dir=node_dir / "jetstream",
            passwords=passwords,
            issuer=issuer,
        )
        write_atomic(Path(node.config), text, mode=0o600)
    callout = CalloutConfig(
        servers=tuple(f"nats://{_nats_listen(bind, base_port, k)}" for k in range(count)),
        user=CALLOUT_USER,
        password=SecretStr(passwords[CALLOUT_USER]),
        issuer_seed=SecretStr(seed.decode()),
        system_user=SYSTEM_USER,
        system_password=SecretStr(passwords[SYSTEM_USER]),
    )
    write_atomic(out / CALLOUT_FILE, _dump_secret(callout), mode=0o600)
    mqtt = ",".join(node.mqtt for node in nodes)
    callout_file = quote(str(out / CALLOUT_FILE))
    service_url = f"mqtt://{SERVICE_USER}:{passwords[SERVICE_USER]}@{mqtt}?callout={callout_file}"
    cluster = Cluster(nodes=nodes, service_url=service_url)
    write_atomic(out / CLUSTER_FILE, cluster.model_dump_json(indent=2) + "\n", mode=0o600)
    return cluster


def _dump_secret(callout: CalloutConfig) -> str:
    data = callout.model_dump(mode="json")
    data["password"] = callout.password.get_secret_value()
    data["issuer_seed"] = callout.issuer_seed.get_secret_value()
    if callout.system_password is not None:
        data["system_password"] = callout.system_password.get_secret_value()
    return json.dumps(data, indent=2) + "\n"


def read_callout(path: Path) -> CalloutConfig:
    """``callout.json``; raises OSError or pydantic's ValidationError."""
    return CalloutConfig.model_validate_json(path.read_text())
