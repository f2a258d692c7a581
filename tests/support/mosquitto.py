"""Debian's real mosquitto, configured by ``hub mosquitto-config``, on a port it could take."""

from __future__ import annotations

import contextlib
import random
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Self

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from tests.support.cli import run_cli

# Mosquitto 2.0.11 cannot listen on port 0 and report the port it got, so a port is
# drawn at random below Linux's ephemeral range (32768-60999, where outgoing connections
# take theirs) and mosquitto is started on it; if its log says the address is in use, it
# is started again on another. Never bind-and-release.
PORT_RANGE = (20000, 32767)
PORT_ATTEMPTS = 8
_RUNNING = re.compile(rb"mosquitto version \S+ running")
_IN_USE = b"Address already in use"


class PortTakenError(RuntimeError):
    """Mosquitto could not listen: another process has the port."""


def random_port() -> int:
    """A port for mosquitto to try (see PORT_RANGE); taken ones are retried by the caller."""
    return random.randint(*PORT_RANGE)


def wait_mosquitto_running(
    proc: subprocess.Popen[bytes], log_path: Path, offset: int, timeout: float = 20.0
) -> None:
    """Wait until mosquitto's log (from ``offset``) says it is running: its listeners are
    open then. Raises PortTakenError if it says the address is in use, RuntimeError if it
    exits or says nothing in ``timeout`` s. The log must get mosquitto's stdout and stderr
    (``-v`` logs every line there)."""
    deadline = time.monotonic() + timeout
    while True:
        with log_path.open("rb") as log:
            log.seek(offset)
            text = log.read()
        if _IN_USE in text:
            raise PortTakenError(text.decode(errors="replace")[-1000:])
        if _RUNNING.search(text):
            return
        if proc.poll() is not None or time.monotonic() > deadline:
            msg = f"mosquitto did not start: {text.decode(errors='replace')[-2000:]}"
            raise RuntimeError(msg)
        time.sleep(0.02)


@contextlib.contextmanager
def dead_port() -> Iterator[int]:
    """A port on 127.0.0.1 that refuses connections for as long as the block runs: the
    socket is bound (nobody else can take the port) but never listens."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield int(sock.getsockname()[1])


def mosquitto_binary() -> str:
    path = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    if not Path(path).exists():
        msg = "mosquitto is missing: make test installs Debian's mosquitto"
        raise RuntimeError(msg)
    return path


def can_login(port: int, user: str, password: str, client_id: str | None = None) -> bool:
    """Whether ``user`` gets a CONNACK that accepts it within 2 s (any broker)."""
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id or f"probe-{user}")
    client.username_pw_set(user, password)
    try:
        client.connect("127.0.0.1", port)
    except OSError:
        return False
    client.loop_start()
    try:
        deadline = time.monotonic() + 2
        while not client.is_connected() and time.monotonic() < deadline:
            time.sleep(0.01)
        return client.is_connected()
    finally:
        client.disconnect()
        client.loop_stop()


class MosquittoProcess:
    """A mosquitto process on a port it could take, stopped for sure: subclasses write its
    config for ``self.port`` (:meth:`write_config`). ``with`` starts it; the first start
    draws other ports while the drawn one is taken (see PORT_RANGE), a restart (``with``
    again after the block) keeps the port, as clients configured with it expect."""

    def __init__(self, log_path: Path) -> None:
        self.port = random_port()
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None
        self._started = False

    def write_config(self) -> Path:
        """Write the config for ``self.port``; returns its path."""
        raise NotImplementedError

    def __enter__(self) -> Self:
        attempts = 1 if self._started else PORT_ATTEMPTS
        for attempt in range(attempts):
            conf = self.write_config()
            offset = self.log_path.stat().st_size if self.log_path.exists() else 0
            with self.log_path.open("ab") as log:
                self.proc = subprocess.Popen(
                    [mosquitto_binary(), "-c", str(conf), "-v"],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            try:
                wait_mosquitto_running(self.proc, self.log_path, offset)
            except PortTakenError:
                self.__exit__(None, None, None)
                if attempt + 1 == attempts:
                    raise
                self.port = random_port()
            except BaseException:
                self.__exit__(None, None, None)
                raise
            else:
                self._started = True
                return self
        raise AssertionError  # unreachable: the last attempt returned or raised

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


class Mosquitto(MosquittoProcess):
    """``with Mosquitto(data_dir, conf_dir) as broker:`` -> ``broker.port``, ``broker.url``:
    configured by ``hub mosquitto-config`` from the hub's data dir."""

    def __init__(self, data_dir: Path, conf_dir: Path) -> None:
        super().__init__(conf_dir.parent / f"{conf_dir.name}-mosquitto.log")
        self.data_dir = data_dir
        self.conf_dir = conf_dir

    def configure(self) -> None:
        """(Re)write the password and ACL files from the hub's user store."""
        done = run_cli(
            "mosquitto-config",
            "--out",
            str(self.conf_dir),
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--data-dir",
            str(self.data_dir),
        )
        assert done.returncode == 0, done.stderr
        # pytest's temp dirs are 0700, so the mosquitto user that a root-started mosquitto
        # drops to could not reach them: the test copy of the config stays root
        generated = (self.conf_dir / "mosquitto.conf").read_text()
        (self.conf_dir / "test.conf").write_text(generated + "user root\n")

    def write_config(self) -> Path:
        self.configure()
        return self.conf_dir / "test.conf"

    engine = "mosquitto"

    @property
    def url(self) -> str:
        return (self.conf_dir / "service.url").read_text().strip()

    def reload(self, user: str, password: str, timeout: float = 10.0) -> None:
        """Re-read users after ``hub users add`` (rewrite the files, SIGHUP), and wait
        until ``user`` can log in."""
        self.configure()
        assert self.proc is not None
        self.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + timeout
        while not can_login(self.port, user, password):
            if time.monotonic() > deadline:
                msg = f"mosquitto did not pick up user {user!r} after SIGHUP"
                raise TimeoutError(msg)
            time.sleep(0.05)


class PlainMosquitto(MosquittoProcess):
    """Mosquitto with no users and no ACLs (anyone may publish anywhere), in ``work``."""

    def __init__(self, work: Path) -> None:
        super().__init__(work / "mosquitto.log")
        self.work = work

    def write_config(self) -> Path:
        self.work.mkdir(parents=True, exist_ok=True)
        conf = self.work / "mosquitto.conf"
        # pytest's temp dirs are 0700: a root-started mosquitto must stay root to read them
        conf.write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence false\nuser root\n"
        )
        return conf


class PluginlessMosquitto(Mosquitto):
    """Mosquitto with the hub's password and ACL files but without the dynamic security
    plugin: a broker that cannot let phones in."""

    def configure(self) -> None:
        super().configure()
        conf = self.conf_dir / "test.conf"
        kept = [line for line in conf.read_text().splitlines() if not line.startswith("plugin")]
        conf.write_text("\n".join(kept) + "\n")
