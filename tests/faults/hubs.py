"""A hub that is killed and started again on the same data directory and ports."""

from __future__ import annotations

import signal
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Self

from hub.auth import Role, UserStore
from tests.support.hub import START_TIMEOUT, HubProcess
from tests.support.mqtt import TestClient

__all__ = ["HubAddress", "RestartableHub", "ensure_user", "operator_client"]


@dataclass(frozen=True, slots=True)
class HubAddress:
    """Where a hub lives across its restarts: clients are configured with this once."""

    mqtt_port: int
    http_port: int
    data_dir: Path


def ensure_user(data_dir: Path, name: str, role: Role = Role.PLAYER) -> str:
    """The password of user ``name`` (created if needed; a running hub sees it at once)."""
    password = f"pw-{name}-0123456789"
    store = UserStore(data_dir)
    if store.get(name) is None:
        store.add(name, role, password)
    return password


def operator_client(address: HubAddress, client_id: str) -> TestClient:
    """A TestClient logged in as the first-run operator under any client id."""
    password = (address.data_dir / "operator.txt").read_text().strip()
    return TestClient(address.mqtt_port, client_id, password=password, username="operator")


class RestartableHub:
    """``with RestartableHub(data_dir, *args) as hub:`` then ``hub.start()``, ``hub.kill()``...

    The first start binds port 0 and reports the ports it got; every later start uses
    those, so clients configured with ``hub.address`` find it again by themselves. All
    starts log to one file, which must show no traceback when the block ends: whatever was
    thrown at the hub, no exception went unhandled.
    """

    def __init__(
        self,
        data_dir: Path,
        *args: str,
        env: dict[str, str] | None = None,
        log: Path | None = None,
    ) -> None:
        self.data_dir = data_dir
        self._address: HubAddress | None = None
        self._args = args
        self._env = env
        self.log_path = log or data_dir.parent / f"{data_dir.name}-hub.log"
        self.process: HubProcess | None = None
        self.starts = 0

    @property
    def address(self) -> HubAddress:
        if self._address is None:
            msg = "the hub has no ports before its first start (it binds port 0 then)"
            raise RuntimeError(msg)
        return self._address

    def _command_args(self) -> tuple[str, ...]:
        """The hub's arguments; once it has started, the ports it got (later options win
        over HubProcess's ``--mqtt-port 0 --http-port 0``)."""
        if self._address is None:
            return self._args
        ports = ("--mqtt-port", str(self._address.mqtt_port))
        return (*self._args, *ports, "--http-port", str(self._address.http_port))

    def start(self, timeout: float = START_TIMEOUT) -> HubProcess:
        assert self.process is None or self.process.proc is None or not self.running
        process = HubProcess(self.data_dir, *self._command_args(), env=self._env, log=self.log_path)
        process.start(timeout)
        self.process = process
        self.starts += 1
        if self._address is None:
            self._address = HubAddress(process.mqtt_port, process.http_port, self.data_dir)
        return process

    def crash_while_starting(self, after: float) -> None:
        """Start the hub and kill -9 it ``after`` seconds later, ready or not yet."""
        process = HubProcess(self.data_dir, *self._command_args(), env=self._env, log=self.log_path)

        def kill_now() -> None:
            if process.proc is not None:
                process.proc.kill()

        timer = threading.Timer(after, kill_now)
        timer.start()
        try:
            process.start()
        except RuntimeError:  # not ready: it must be our kill, not a failure of its own
            assert process.proc is not None
            assert process.proc.returncode == -signal.SIGKILL, self.log_text()[-3000:]
        finally:
            timer.cancel()
            process.kill()

    @property
    def running(self) -> bool:
        return (
            self.process is not None
            and self.process.proc is not None
            and self.process.proc.poll() is None
        )

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def process_signal(self, sig: int) -> None:
        """Send ``sig`` to the running hub process."""
        assert self.process is not None
        if self.running:
            self.process.signal(sig)

    def kill(self) -> None:
        """kill -9."""
        assert self.process is not None
        self.process.kill()

    def stop(self) -> int:
        """SIGTERM; the exit code."""
        assert self.process is not None
        return self.process.stop()

    def log_text(self) -> str:
        if not self.log_path.exists():
            return ""
        return self.log_path.read_text(errors="backslashreplace")

    def assert_clean_log(self) -> None:
        """No start of this hub logged a traceback (an exception nothing handled)."""
        log = self.log_text()
        assert "Traceback" not in log, log[max(0, log.index("Traceback") - 500) :][:3000]

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.process is not None and self.running:
            try:
                self.process.stop(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
        if exc is None:
            self.assert_clean_log()
