"""The servers under test, each a set of processes on 127.0.0.1 and ephemeral ports.

- ``hub``: ``hub serve`` with its embedded broker (TCP, and WebSocket via the web bridge);
- ``hub+mosquitto``: Debian's mosquitto configured by ``hub mosquitto-config`` (plus
  ``set_tcp_nodelay true``), and ``hub serve --broker`` for the state service and the web
  bridge (whose ``/mqtt`` then proxies each WebSocket to mosquitto over TCP);
- ``hub+nats`` / ``hub+nats3``: a NATS cluster of 1 or 3 nodes written by ``hub nats-config``
  (``.venv/bin/nats-server``; the hub answers its logins through the auth callout) and
  ``hub serve --broker`` with the cluster's URL (the service on node 1). Clients speak MQTT
  over TCP straight to the nodes: on 3 nodes the players are on node 2 and the spectators
  spread evenly over the three, so every command and state crosses the cluster's routes;
- ``socketio``: the original design, ``bench/baselines/socketio_server.py`` on gevent.

Credentials: every bench user shares one password, and ``users.json`` is written by
cloning one entry that the hub's own ``UserStore`` hashed, so a thousand users cost one
argon2 hash instead of a thousand (the Mosquitto hash in the clone uses Mosquitto's own
default of 101 PBKDF2 iterations, not the hub's 20,000, so that logging in a thousand
phones is not what the connect rate measures). On the embedded hub, phones are player
sessions in the hub's session store (what ``POST /api/sessions`` creates), as real phones.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import IO, Literal

from argon2 import PasswordHasher

from bench.clients import Endpoint, Identity, Kind, TcpClient
from bench.errors import BenchError
from hub.auth import Role, SessionStore, UserStore
from hub.auth.passwords import mosquitto_hash
from hub.protocol import parse_broker_url

__all__ = [
    "NATS_TARGETS",
    "REPO",
    "HubTarget",
    "NatsTarget",
    "SocketIOTarget",
    "Target",
    "TargetName",
    "free_port",
    "make_target",
]

REPO = Path(__file__).resolve().parents[1]
PASSWORD = "bench-shared-password-0123456789"  # noqa: S105 - throwaway, loopback only
OPERATOR = "bench-op"
PLAYERS = ("bench-p1", "bench-p2")
TargetName = Literal["hub", "hub+mosquitto", "hub+nats", "hub+nats3", "socketio"]
NATS_TARGETS: dict[str, int] = {"hub+nats": 1, "hub+nats3": 3}
"""The NATS-backed hubs and their node counts (the storm workload only)."""
_SERVER_ENV = {
    "HUB_WS_MAX_CONNECTIONS": "5000",  # the paced table alone needs 502
    # the generator opens up to 16 per worker at once and each waits its argon2 login: the
    # default bound of 64 not yet logged in (a guard against idle sockets) refused some
    "HUB_WS_MAX_UNAUTHENTICATED": "1024",
}


class ServerProcess:
    """One child process whose first stdout line says it is ready."""

    def __init__(
        self, name: str, argv: list[str], log: Path, env: dict[str, str], cwd: Path = REPO
    ) -> None:
        self.name = name
        self.cwd = cwd
        self.argv = argv
        self.log_path = log
        self.env = {**os.environ, **env}
        self.proc: subprocess.Popen[str] | None = None
        self._log: IO[str] | None = None
        self._drain: threading.Thread | None = None

    def start(self, timeout: float = 30.0, *, ready_line: bool = True) -> str:
        self._log = self.log_path.open("a")
        self.proc = subprocess.Popen(
            self.argv,
            cwd=self.cwd,
            env=self.env,
            stdout=subprocess.PIPE if ready_line else self._log,
            stderr=self._log,
            text=True,
        )
        if not ready_line:
            return ""
        line: list[str] = []
        stdout = self.proc.stdout
        assert stdout is not None
        reader = threading.Thread(target=lambda: line.append(stdout.readline()), daemon=True)
        reader.start()
        reader.join(timeout)
        if not line or not line[0].strip():
            self.stop()
            msg = f"{self.name} did not get ready in {timeout} s:\n{self.log_tail()}"
            raise BenchError(msg)
        # keep draining stdout, so a chatty server never blocks on a full pipe
        self._drain = threading.Thread(target=stdout.read, daemon=True)
        self._drain.start()
        return line[0].strip()

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def log_tail(self, chars: int = 3000) -> str:
        return self.log_path.read_text()[-chars:] if self.log_path.exists() else ""

    def stop(self, timeout: float = 10.0) -> None:
        proc = self.proc
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        if proc is not None and proc.stdout is not None:
            if self._drain is not None:  # EOF once the process is gone
                self._drain.join(5)
            if self._drain is None or not self._drain.is_alive():
                proc.stdout.close()
        if self._log is not None:
            self._log.close()
            self._log = None


class _UserFile:
    """``users.json`` for many users at the cost of one hash (see the module docstring)."""

    _template: dict[str, object] | None = None

    @classmethod
    def template(cls) -> dict[str, object]:
        if cls._template is None:
            with tempfile.TemporaryDirectory() as tmp:
                UserStore(Path(tmp)).add("template", Role.PLAYER, PASSWORD)
                raw = json.loads((Path(tmp) / UserStore.FILENAME).read_text())
            entry: dict[str, object] = dict(raw["users"]["template"])
            if "mosquitto_hash" in entry:
                entry["mosquitto_hash"] = mosquitto_hash(PASSWORD, iterations=101)
            cls._template = entry
        return cls._template

    @classmethod
    def write(cls, data_dir: Path, users: dict[str, Role]) -> None:
        entry = cls.template()
        body = {"users": {name: {**entry, "role": role.value} for name, role in users.items()}}
        path = data_dir / UserStore.FILENAME
        path.write_text(json.dumps(body, indent=2))
        path.chmod(0o600)


def free_port() -> int:
    """A free TCP port on 127.0.0.1 (ephemeral, chosen by the kernel)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_port(port: int, proc: subprocess.Popen[str] | None, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        except OSError:
            if proc is not None and proc.poll() is not None:
                break
            time.sleep(0.005)
        else:
            return
    msg = f"nothing listens on 127.0.0.1:{port}"
    raise BenchError(msg)


class Target:
    """A server under test: ``start()``, ``endpoint(kind)``, ``identities``, ``stop()``."""

    name: TargetName
    ready_seconds = 0.0

    def __init__(self, workdir: Path, phones: int = 0, hub_src: Path | None = None) -> None:
        self.workdir = workdir
        self.phones = phones
        self.hub_src = hub_src or REPO
        """Where ``python -m hub`` runs from (its ``hub`` package and ``config/``)."""
        self.servers: list[ServerProcess] = []

    @property
    def pids(self) -> list[int]:
        return [s.pid for s in self.servers]

    def start(self) -> None:
        raise NotImplementedError

    def endpoint(self, kind: Kind) -> Endpoint:
        raise NotImplementedError

    def player_endpoint(self, kind: Kind) -> Endpoint:
        """Where the players connect."""
        return self.endpoint(kind)

    def spectator_endpoints(self, kind: Kind) -> list[Endpoint]:
        """Where the spectators connect, spread evenly over these."""
        return [self.endpoint(kind)]

    def players(self) -> list[Identity]:
        return [Identity(name, name, PASSWORD) for name in PLAYERS]

    def phone_identities(self) -> list[Identity]:
        """``phones`` distinct identities for spectators and idle clients."""
        return [Identity(f"sio-{i}") for i in range(self.phones)]

    def operator(self, client_id: str) -> Identity:
        return Identity(client_id, OPERATOR, PASSWORD)

    def stop(self) -> None:
        for server in reversed(self.servers):
            server.stop()

    def logs(self) -> str:
        return "\n".join(f"--- {s.name}\n{s.log_tail(1500)}" for s in self.servers)


class HubTarget(Target):
    def __init__(
        self,
        workdir: Path,
        phones: int = 0,
        *,
        mosquitto: bool = False,
        tcp_client: TcpClient = "paho",
        hub_src: Path | None = None,
        games: tuple[str, ...] = (),
    ) -> None:
        super().__init__(workdir, phones, hub_src)
        self.name = "hub+mosquitto" if mosquitto else "hub"
        self.mosquitto = mosquitto
        self.games = games
        """The games the hub runs (``HUB_GAMES``; empty: its default, ``main``). Phone ``i``
        belongs to ``games[i * len(games) // phones]``: equal consecutive shares."""
        self.tcp_client = tcp_client
        self.data_dir = workdir / "data"
        self.mqtt_port = 0
        self.http_port = 0
        self._phones: list[Identity] = []

    def _provision(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        users = {OPERATOR: Role.OPERATOR, **dict.fromkeys(PLAYERS, Role.PLAYER)}
        if self.mosquitto:  # no sessions on an external broker: phones are users there
            names = [f"ph-{i:05d}" for i in range(self.phones)]
            users |= dict.fromkeys(names, Role.PLAYER)
            self._phones = [Identity(n, n, PASSWORD) for n in names]
        _UserFile.write(self.data_dir, users)
        if not self.mosquitto:
            with SessionStore(self.data_dir) as sessions:
                made = [sessions.create(self._game_of(i), f"phone{i}") for i in range(self.phones)]
            self._phones = [
                Identity(m.session.client_id, m.session.client_id, m.token) for m in made
            ]

    def _game_of(self, phone: int) -> str:
        return self.games[phone * len(self.games) // self.phones] if self.games else "main"

    def _hub(self, *extra: str) -> ServerProcess:
        argv = [sys.executable, "-m", "hub", "serve", "--data-dir", str(self.data_dir)]
        argv += ["--bind", "127.0.0.1", "--mqtt-port", "0", "--http-port", "0"]
        argv += ["--command-rate-limit", "0", *extra]
        env = dict(_SERVER_ENV)
        if self.games:
            env["HUB_GAMES"] = json.dumps(list(self.games))  # a JSON list, as hub/settings.py reads
        return ServerProcess("hub", argv, self.workdir / "hub.log", env, self.hub_src)

    def _hub_command(self, command: str, *args: str) -> None:
        """Run ``hub COMMAND ARGS`` from the hub's source tree; BenchError if it fails."""
        done = subprocess.run(
            [sys.executable, "-m", "hub", command, *args],
            cwd=self.hub_src,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if done.returncode != 0:
            msg = f"hub {command} failed: {done.stderr}"
            raise BenchError(msg)

    def _mosquitto(self) -> tuple[ServerProcess, str]:
        conf = self.workdir / "mosquitto"
        port = free_port()
        self._hub_command(
            *("mosquitto-config", "--out", str(conf), "--port", str(port)),
            *("--bind", "127.0.0.1", "--data-dir", str(self.data_dir)),
        )
        text = (conf / "mosquitto.conf").read_text() + "set_tcp_nodelay true\n"
        if os.geteuid() == 0:  # our temp dirs are 0700: mosquitto must not drop to its user
            text += "user root\n"
        (conf / "bench.conf").write_text(text)
        with (conf / "acl").open("a") as acl:  # the subscription benchmark's topic
            acl.write(f"\nuser {OPERATOR}\ntopic readwrite bench/#\n")
        binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        if not Path(binary).exists():
            msg = "mosquitto is missing (make bench installs Debian's mosquitto)"
            raise BenchError(msg)
        server = ServerProcess(
            "mosquitto", [binary, "-c", str(conf / "bench.conf")], self.workdir / "mosq.log", {}
        )
        self.mqtt_port = port
        return server, (conf / "service.url").read_text().strip()

    def start(self) -> None:
        self._provision()
        t0 = time.monotonic()
        if self.mosquitto:
            broker, url = self._mosquitto()
            t0 = time.monotonic()
            broker.start(ready_line=False)
            self.servers.append(broker)
            assert broker.proc is not None
            _wait_port(self.mqtt_port, broker.proc, 20)
            hub = self._hub("--broker", url)
        else:
            hub = self._hub()
        hub.start()
        self.ready_seconds = time.monotonic() - t0
        self.servers.append(hub)
        ready = json.loads((self.data_dir / "ready.json").read_text())
        if not self.mosquitto:
            self.mqtt_port = int(ready["mqtt_port"])
        self.http_port = int(ready["http_port"])

    def endpoint(self, kind: Kind) -> Endpoint:
        if kind == "ws":
            return Endpoint("ws", "127.0.0.1", self.http_port)
        if kind == "tcp":
            return Endpoint("tcp", "127.0.0.1", self.mqtt_port, tcp_client=self.tcp_client)
        msg = f"the hub speaks MQTT, not {kind}"
        raise BenchError(msg)

    def phone_identities(self) -> list[Identity]:
        return self._phones


class NatsTarget(HubTarget):
    """``hub serve --broker`` on a NATS cluster of ``nodes`` nodes (phones are users, as on
    Mosquitto: their client id is their username, which NATS requires)."""

    def __init__(
        self,
        workdir: Path,
        phones: int = 0,
        *,
        nodes: int,
        tcp_client: TcpClient = "paho",
        hub_src: Path | None = None,
    ) -> None:
        super().__init__(workdir, phones, mosquitto=True, tcp_client=tcp_client, hub_src=hub_src)
        self.name = "hub+nats3" if nodes == 3 else "hub+nats"
        self.nodes = nodes
        self.mqtt_ports: list[int] = []

    def _provision(self) -> None:
        """As on Mosquitto, plus a cheap argon2 hash in the clone: every NATS login is
        checked by the hub's auth callout against ``password_hash``, whose parameters the
        hash itself carries; with the hub's own (64 MiB, t=3) a few hundred logins at once
        overran the callout's 2 s on a loaded 2-core machine and were refused. As for
        Mosquitto's PBKDF2 above, the storm measures the game, not logins."""
        super()._provision()
        path = self.data_dir / UserStore.FILENAME
        body = json.loads(path.read_text())
        cheap = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1).hash(PASSWORD)
        for entry in body["users"].values():
            entry["password_hash"] = cheap
        path.write_text(json.dumps(body, indent=2))
        path.chmod(0o600)

    def _cluster(self) -> str:
        """Write the cluster's configs; start and wait for every node; the service URL."""
        conf = self.workdir / "nats"
        self._hub_command(
            *("nats-config", "--nodes", str(self.nodes), "--out", str(conf)),
            *("--bind", "127.0.0.1", "--base-port", "0"),
        )
        cluster = json.loads((conf / "cluster.json").read_text())
        binary = Path(sys.executable).parent / "nats-server"
        if not binary.exists():
            msg = "nats-server is missing (make setup installs it in .venv/bin)"
            raise BenchError(msg)
        for index, node in enumerate(cluster["nodes"]):
            server = ServerProcess(
                f"nats-node{index + 1}",
                [str(binary), "-c", node["config"]],
                self.workdir / f"nats-node{index + 1}.log",
                {},
            )
            server.start(ready_line=False)
            self.servers.append(server)
            self.mqtt_ports.append(int(node["mqtt"].rsplit(":", 1)[1]))
        for server, port in zip(self.servers, self.mqtt_ports, strict=True):
            _wait_port(port, server.proc, 30)
        return str(cluster["service_url"])

    def start(self) -> None:
        self._provision()
        t0 = time.monotonic()
        url = self._cluster()
        self._users_into_cluster(url)
        hub = self._hub("--broker", url)
        hub.start(60)
        self.ready_seconds = time.monotonic() - t0
        self.servers.append(hub)
        ready = json.loads((self.data_dir / "ready.json").read_text())
        self.http_port = int(ready["http_port"])
        self.mqtt_port = self.mqtt_ports[0]

    def _users_into_cluster(self, url: str) -> None:
        """On NATS the hub reads users from the cluster's key-value bucket, not the data
        dir: the provisioned ones are put there as they are (hashes included)."""
        from hub.nats.stores import cluster_stores  # noqa: PLC0415 - nats-py only on NATS

        with cluster_stores(parse_broker_url(url)) as stores:
            for user in UserStore(self.data_dir).list():
                stores.users.put(user)

    def _node(self, index: int) -> Endpoint:
        return Endpoint("tcp", "127.0.0.1", self.mqtt_ports[index], tcp_client=self.tcp_client)

    def endpoint(self, kind: Kind) -> Endpoint:
        if kind != "tcp":
            msg = f"the NATS targets are benchmarked over MQTT/TCP, not {kind}"
            raise BenchError(msg)
        return self._node(0)

    def player_endpoint(self, kind: Kind) -> Endpoint:
        self.endpoint(kind)
        return self._node(min(1, self.nodes - 1))

    def spectator_endpoints(self, kind: Kind) -> list[Endpoint]:
        self.endpoint(kind)
        return [self._node(index) for index in range(self.nodes)]


class SocketIOTarget(Target):
    name: TargetName = "socketio"

    def __init__(self, workdir: Path, phones: int = 0) -> None:
        super().__init__(workdir, phones)
        self.port = 0

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        script = REPO / "bench" / "baselines" / "socketio_server.py"
        server = ServerProcess(
            "socketio",
            [sys.executable, str(script), "--host", "127.0.0.1", "--port", "0"],
            self.workdir / "socketio.log",
            {},
        )
        t0 = time.monotonic()
        line = server.start()
        self.ready_seconds = time.monotonic() - t0
        self.servers.append(server)
        self.port = int(line.rsplit("port=", 1)[1])

    def endpoint(self, kind: Kind) -> Endpoint:
        return Endpoint("sio", "127.0.0.1", self.port)


def make_target(
    name: TargetName,
    workdir: Path,
    phones: int = 0,
    *,
    tcp_client: TcpClient = "paho",
    hub_src: Path | None = None,
    games: tuple[str, ...] = (),
) -> Target:
    """``games``: the games a hub runs (the Socket.IO baseline makes a game per name its
    clients ask for; the NATS targets run the default game only)."""
    workdir.mkdir(parents=True, exist_ok=True)
    if name == "socketio":
        return SocketIOTarget(workdir, phones)
    if name in NATS_TARGETS:
        return NatsTarget(
            workdir, phones, nodes=NATS_TARGETS[name], tcp_client=tcp_client, hub_src=hub_src
        )
    return HubTarget(
        workdir,
        phones,
        mosquitto=name == "hub+mosquitto",
        tcp_client=tcp_client,
        hub_src=hub_src,
        games=games,
    )
