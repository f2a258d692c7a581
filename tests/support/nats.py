"""A real NATS cluster (``.venv/bin/nats-server``) configured by ``hub nats-config``.

NATS cannot report an ephemeral MQTT port, so the config takes a random base port
(``--base-port 0``) and the cluster is written and started again with another one if a node
finds an address in use.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import paho.mqtt.client as paho

from hub.nats.config import Cluster, NodeInfo, write_cluster
from hub.protocol.broker_url import parse_broker_url
from tests.support.mosquitto import can_login
from tests.support.mqtt import TestClient

__all__ = ["NatsCluster", "fail_over", "nats_server", "node_port"]

_ATTEMPTS = 5
_IN_USE = "address already in use"


def nats_server() -> Path | None:
    """``nats-server`` beside this Python (``make setup`` installs it), or None."""
    path = Path(sys.executable).parent / "nats-server"
    return path if path.exists() else None


def node_port(address: str) -> int:
    """``HOST:PORT`` -> PORT."""
    return int(address.rsplit(":", 1)[1])


class NatsCluster:
    """``with NatsCluster(conf_dir, nodes=3) as cluster:`` -> ``cluster.url`` (what ``hub
    serve --broker`` takes), ``cluster.nodes``, ``cluster.mqtt_port(k)``, ``cluster.kill(k)``."""

    def __init__(self, conf_dir: Path, *, nodes: int = 1) -> None:
        self.conf_dir = conf_dir
        self.count = nodes
        self.cluster: Cluster | None = None
        self.procs: list[subprocess.Popen[bytes] | None] = []

    engine = "nats"

    @property
    def url(self) -> str:
        assert self.cluster is not None
        return self.cluster.service_url

    @property
    def nodes(self) -> tuple[NodeInfo, ...]:
        assert self.cluster is not None
        return self.cluster.nodes

    def mqtt_port(self, index: int) -> int:
        return node_port(self.nodes[index].mqtt)

    def websocket_port(self, index: int) -> int:
        return node_port(self.nodes[index].websocket.removesuffix("/mqtt"))

    def log_path(self, index: int) -> Path:
        return self.conf_dir / f"node{index + 1}.log"

    def log_text(self, index: int) -> str:
        path = self.log_path(index)
        return path.read_text(errors="replace") if path.exists() else ""

    def reload(self, user: str, password: str) -> None:
        """Nothing to do: the hub's auth callout reads users at each login."""

    def _start_node(self, index: int) -> subprocess.Popen[bytes]:
        server = nats_server()
        assert server is not None, "nats-server is missing: make setup installs it"
        with self.log_path(index).open("ab") as log:
            return subprocess.Popen(
                [str(server), "-c", self.nodes[index].config],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def _ready(self, timeout: float) -> bool:
        """True when the service can log in on every node (JetStream up); False if a node
        found a port taken. Raises if a node died otherwise or the deadline passed."""
        url = parse_broker_url(self.url)
        password = url.password.get_secret_value() if url.password else ""
        waiting = set(range(self.count))
        deadline = time.monotonic() + timeout
        while waiting:
            for index in sorted(waiting):
                if _IN_USE in self.log_text(index):
                    return False
                proc = self.procs[index]
                if proc is not None and proc.poll() is not None:
                    msg = f"nats node{index + 1} exited: {self.log_text(index)[-2000:]}"
                    raise RuntimeError(msg)
                if can_login(self.mqtt_port(index), "service", password, f"ready-{index}"):
                    waiting.discard(index)
            if time.monotonic() > deadline:
                logs = "\n".join(self.log_text(i)[-1500:] for i in sorted(waiting))
                msg = f"nats nodes {sorted(waiting)} not ready in {timeout} s:\n{logs}"
                raise TimeoutError(msg)
            time.sleep(0.05)
        return True

    def __enter__(self) -> Self:
        for _ in range(_ATTEMPTS):
            shutil.rmtree(self.conf_dir, ignore_errors=True)
            self.cluster = write_cluster(self.conf_dir, count=self.count, base_port=0)
            self.procs = [self._start_node(index) for index in range(self.count)]
            try:
                if self._ready(timeout=30):
                    return self
            except BaseException:
                self._stop_all()
                raise
            self._stop_all()
        msg = f"no free ports for a NATS cluster in {_ATTEMPTS} attempts"
        raise RuntimeError(msg)

    def kill(self, index: int) -> None:
        """kill -9 of node ``index`` (from 0)."""
        proc = self.procs[index]
        if proc is not None and proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(10)

    def restart(self, index: int, timeout: float = 60.0) -> None:
        """Start node ``index`` (from 0) again from its config, after ``kill``; return once
        the service can log in on it (JetStream up there again)."""
        proc = self.procs[index]
        assert proc is None or proc.poll() is not None, f"node{index + 1} is running"
        logged = len(self.log_text(index))
        self.procs[index] = self._start_node(index)
        url = parse_broker_url(self.url)
        password = url.password.get_secret_value() if url.password else ""
        deadline = time.monotonic() + timeout
        while not can_login(self.mqtt_port(index), "service", password, f"ready-{index}"):
            restarted = self.procs[index]
            if restarted is not None and restarted.poll() is not None:
                text = self.log_text(index)[logged:]
                if _IN_USE not in text or time.monotonic() > deadline:
                    msg = f"nats node{index + 1} exited: {text[-2000:]}"
                    raise RuntimeError(msg)
                # one of its ports is held by another socket meanwhile (an outgoing
                # connection's local port): the same ports again, a bit later
                time.sleep(0.5)
                logged = len(self.log_text(index))
                self.procs[index] = self._start_node(index)
                continue
            if time.monotonic() > deadline:
                msg = f"nats node{index + 1} not ready in {timeout} s after its restart"
                raise TimeoutError(msg)
            time.sleep(0.05)

    def _stop_all(self) -> None:
        for proc in self.procs:
            if proc is not None and proc.poll() is None:
                proc.terminate()
        for proc in self.procs:
            if proc is None:
                continue
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop_all()


def fail_over(client: TestClient, ports: Sequence[int]) -> None:
    """From now on each reconnect of ``client`` goes to the next of ``ports`` (paho by
    itself reconnects to the one port it was given, a node that may be dead), and a
    subscription the node refuses is asked again: a NATS node refuses QoS 1 subscriptions
    (SUBACK 0x80) while JetStream has no leader for the MQTT streams, seconds after another
    node died, and the client's resubscription after a reconnect would stay refused. Call
    it once the client is subscribed (``TestClient.subscribe`` sets its own callback)."""

    def next_node(raw: paho.Client, _userdata: object) -> None:
        # paho's ``port`` setter refuses while it is CONNECTING, which it is when it calls
        # on_pre_connect (and an exception there ends its network thread): the field.
        raw._port = ports[(ports.index(raw.port) + 1) % len(ports)]

    def again() -> None:
        if client._client.is_connected():
            for topic_filter, qos in client._filters:
                client._client.subscribe(topic_filter, qos)

    def check(_raw: paho.Client, _userdata: object, _mid: int, codes: list[Any], *_: Any) -> None:
        if any(getattr(code, "is_failure", False) for code in codes):
            timer = threading.Timer(0.5, again)
            timer.daemon = True
            timer.start()

    client._client.on_pre_connect = next_node
    client._client.on_subscribe = check
