"""Debian's real mosquitto, configured by ``hub mosquitto-config``, on a free port."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType
from typing import Self

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from tests.support.cli import run_cli


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def mosquitto_binary() -> str:
    path = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    if not Path(path).exists():
        msg = "mosquitto is missing: make test installs Debian's mosquitto"
        raise RuntimeError(msg)
    return path


def can_login(port: int, user: str, password: str) -> bool:
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"probe-{user}")
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


class Mosquitto:
    """``with Mosquitto(data_dir, conf_dir) as broker:`` -> ``broker.port``, ``broker.url``."""

    def __init__(self, data_dir: Path, conf_dir: Path) -> None:
        self.data_dir = data_dir
        self.conf_dir = conf_dir
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = conf_dir.parent / f"{conf_dir.name}-mosquitto.log"

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

    def __enter__(self) -> Self:
        self.configure()
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [mosquitto_binary(), "-c", str(self.conf_dir / "test.conf"), "-v"],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return self
            except OSError:
                if self.proc.poll() is not None:
                    break
                time.sleep(0.02)
        self.__exit__(None, None, None)
        msg = f"mosquitto did not start: {self.log_path.read_text()[-2000:]}"
        raise RuntimeError(msg)

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


class PluginlessMosquitto(Mosquitto):
    """Mosquitto with the hub's password and ACL files but without the dynamic security
    plugin: a broker that cannot let phones in."""

    def configure(self) -> None:
        super().configure()
        conf = self.conf_dir / "test.conf"
        kept = [line for line in conf.read_text().splitlines() if not line.startswith("plugin")]
        conf.write_text("\n".join(kept) + "\n")
