"""Run a real ``hub serve`` as a subprocess on free ports, and stop it for sure."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Protocol, Self

from hub.auth import Role, UserStore
from hub.protocol.broker_url import parse_broker_url
from tests.support.cli import REPO, run_cli
from tests.support.mqtt import TestClient

__all__ = [
    "REPO",
    "START_TIMEOUT",
    "ExternalBroker",
    "HubProcess",
    "Line",
    "cluster_password",
    "denied_publish_logged",
    "password_of",
    "run_cli",
]


START_TIMEOUT = 60.0
"""How long ``hub serve`` may take to say it is ready: generous, as the suite runs on
several workers under coverage on a machine that may be busy (over 20 s was seen there)."""


class ExternalBroker(Protocol):
    """A broker the hub runs against (Mosquitto, a NATS cluster)."""

    @property
    def url(self) -> str:
        """What ``hub serve --broker`` takes."""

    @property
    def engine(self) -> str:
        """``mosquitto`` or ``nats``."""

    def reload(self, user: str, password: str) -> None:
        """Let a user just added to the hub's store log in."""


@dataclass(frozen=True, slots=True)
class Line:
    """A line ``hub serve`` printed on stdout, with the ``time.monotonic()`` it was read."""

    text: str
    at: float


class HubProcess:
    """``with HubProcess(data_dir) as hub:`` -> ``hub.mqtt_port``, ``hub.http_port``.

    Every line it prints (``tablehub ready ...``, and on NATS ``tablehub standby ...`` as
    it waits, takes over or steps down) is kept in ``lines``; ``wait_line`` waits for one."""

    def __init__(
        self,
        data_dir: Path,
        *args: str,
        env: dict[str, str] | None = None,
        log: Path | None = None,
        broker: ExternalBroker | None = None,
    ) -> None:
        self.data_dir = data_dir
        self.broker = broker
        self.args = [*args, "--broker", broker.url] if broker is not None else list(args)
        self.env = {**os.environ, **(env or {})}
        self.log_path = log or data_dir.parent / f"{data_dir.name}-hub.log"
        self.proc: subprocess.Popen[str] | None = None
        self.mqtt_port = 0
        self.http_port = 0
        self.ready_line = ""
        self.lines: list[Line] = []
        self._cond = threading.Condition()
        self._ended = False
        self._reader: threading.Thread | None = None
        self._log: IO[str] | None = None

    def command(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "hub",
            "serve",
            "--data-dir",
            str(self.data_dir),
            "--bind",
            "127.0.0.1",
            "--mqtt-port",
            "0",
            "--http-port",
            "0",
            *self.args,
        ]

    def start(self, timeout: float = START_TIMEOUT) -> Self:
        """Start it and wait for its ready line (on NATS it may first wait as a standby:
        the lease of a hub killed a moment ago has not lapsed yet)."""
        after = self.spawn()
        try:
            line = self.wait_line("tablehub ready", after=after, timeout=timeout)
        except TimeoutError as exc:
            self.kill()
            msg = f"hub did not get ready: {exc}"
            raise RuntimeError(msg) from exc
        self.ready_line = line.text
        ready = self.ready()
        self.mqtt_port = int(ready["mqtt_port"])
        self.http_port = int(ready["http_port"])
        return self

    def spawn(self) -> int:
        """Start the process and read its lines; returns the index its first line gets."""
        assert self.proc is None or self.proc.poll() is not None
        self._log = self.log_path.open("a")
        self.proc = subprocess.Popen(
            self.command(),
            cwd=REPO,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
        )
        assert self.proc.stdout is not None
        with self._cond:
            self._ended = False
            after = len(self.lines)
        self._reader = threading.Thread(target=self._read, args=(self.proc.stdout,), daemon=True)
        self._reader.start()
        return after

    def _read(self, stdout: IO[str]) -> None:
        with contextlib.suppress(ValueError, OSError), stdout:  # closed under us: done
            for text in stdout:
                with self._cond:
                    self.lines.append(Line(text.strip(), time.monotonic()))
                    self._cond.notify_all()
        with self._cond:
            self._ended = True
            self._cond.notify_all()

    def wait_line(self, prefix: str, *, after: int = 0, timeout: float = START_TIMEOUT) -> Line:
        """The first line from index ``after`` on that starts with ``prefix``; TimeoutError
        (with the log's tail) if none comes in ``timeout`` s or the process ends first."""

        def found() -> Line | None:
            return next((ln for ln in self.lines[after:] if ln.text.startswith(prefix)), None)

        with self._cond:
            self._cond.wait_for(lambda: found() is not None or self._ended, timeout)
            line = found()
        if line is None:
            ended = "it ended" if self._ended else f"{timeout} s passed"
            msg = (
                f"no {prefix!r} line before {ended}: {self.lines[after:]}\n"
                f"{self.log_text()[-3000:]}"
            )
            raise TimeoutError(msg)
        return line

    @property
    def active(self) -> bool:
        """Whether its last line says it is the active service (NATS: not a standby)."""
        with self._cond:
            return bool(self.lines) and self.lines[-1].text.startswith("tablehub ready")

    def client(self, name: str, *, role: str = "player", **kwargs: Any) -> TestClient:
        """A TestClient for user ``name`` (created if needed); enter it to connect."""
        return TestClient(self.mqtt_port, name, password=password_of(self, name, role), **kwargs)

    @property
    def engine(self) -> str:
        """``embedded``, ``mosquitto`` or ``nats``: where the contract differs (docs)."""
        return "embedded" if self.broker is None else self.broker.engine

    def ready(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads((self.data_dir / "ready.json").read_text())
        return data

    @property
    def store_args(self) -> list[str]:
        """Where ``hub users`` / ``hub sessions`` find this hub's users and sessions: its
        data dir, and on a NATS cluster the cluster's service URL."""
        args = ["--data-dir", str(self.data_dir)]
        if self.broker is not None and self.broker.engine == "nats":
            args += ["--broker", self.broker.url]
        return args

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)

    def stop(self, timeout: float = 10.0) -> int:
        """SIGTERM and wait; returns the exit code."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)  # in case a test left it stopped
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        finally:
            self._close()

    def kill(self) -> None:
        """kill -9, as a power cut would."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self._close()

    def _close(self) -> None:
        """Once the process has ended its stdout reaches its end and the reader, which owns
        the pipe, closes it. Never close it under the reader: the close would wait for the
        reader's blocked read, i.e. for ever while the process lives."""
        if self._reader is not None and self.proc is not None and self.proc.poll() is not None:
            self._reader.join(10)
            if not self._reader.is_alive():
                self._reader = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def wait_exit(self, timeout: float) -> tuple[int, float]:
        """Wait for the process to end; returns (exit code, seconds waited)."""
        assert self.proc is not None
        started = time.monotonic()
        code = self.proc.wait(timeout)
        self._close()
        return code, time.monotonic() - started

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.proc is not None and self.proc.poll() is None:
            try:
                self.stop(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()
        self._close()


def denied_publish_logged(hub: HubProcess, user: str, topic: str) -> bool:
    """Whether the broker logged that its ACL denied ``user`` a publish to ``topic``: the
    embedded broker in the hub's log; Mosquitto (run with ``-v``) in its own, by client id
    (``New client connected from ... as <id> (..., u'<user>')``, then ``Denied PUBLISH from
    <id> (d0, q0, r0, m0, '<topic>', ... (n bytes))``), since it may assign the id."""
    if hub.broker is None:
        return f"dropped publish by {user} to {topic}" in hub.log_text()
    log_path = getattr(hub.broker, "log_path", None)
    if not isinstance(log_path, Path) or hub.broker.engine != "mosquitto":
        msg = f"denied publishes are read from Mosquitto's log, not {hub.broker.engine}'s"
        raise NotImplementedError(msg)
    lines = log_path.read_text(errors="replace").splitlines()
    ids = {
        match.group(1)
        for line in lines
        if (match := re.search(r" as (\S+) \(.*u'([^']*)'\)", line)) and match.group(2) == user
    }
    return any(
        f"'{topic}'" in line and any(f"Denied PUBLISH from {cid} (" in line for cid in ids)
        for line in lines
    )


def password_of(hub: HubProcess, name: str, role: str = "player") -> str:
    """The password of user ``name``, creating the user in the hub's store if needed."""
    if name == "operator":
        return (hub.data_dir / "operator.txt").read_text().strip()
    if hub.broker is not None and hub.broker.engine == "nats":  # users live in the cluster
        return cluster_password(hub.broker.url, name, role)
    password = f"pw-{name}-0123456789"
    store = UserStore(hub.data_dir)
    if store.get(name) is None:
        store.add(name, Role(role), password)
        if hub.broker is not None:
            hub.broker.reload(name, password)
    return password


def cluster_password(url: str, name: str, role: str = "player") -> str:
    """The password of user ``name`` of the NATS cluster whose service URL is ``url``,
    creating the user in the cluster's user bucket if needed."""
    from hub.nats.stores import cluster_stores  # noqa: PLC0415 - nats-py only on NATS

    password = f"pw-{name}-0123456789"
    with cluster_stores(parse_broker_url(url)) as stores:
        if stores.users.get(name) is None:
            stores.users.add(name, Role(role), password)
    return password
