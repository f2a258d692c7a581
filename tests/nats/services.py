"""Several ``hub serve --broker NATS-URL --instance NAME`` processes on one cluster: each
prints ``tablehub standby ...`` or ``tablehub ready ...`` (and more of them as it takes
over or steps down); every line is kept with the time it came. Processes are stopped by
their pid (SIGTERM, then SIGKILL)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Self

from tests.support.cli import REPO
from tests.support.nats import NatsCluster

__all__ = ["Line", "ServiceProcess"]


@dataclass(frozen=True, slots=True)
class Line:
    text: str
    at: float
    """time.monotonic() when it was read."""


class ServiceProcess:
    """``with ServiceProcess(data_dir, cluster, "a") as a:`` -> ``a.wait_line(...)``."""

    def __init__(self, data_dir: Path, cluster: NatsCluster, instance: str, *args: str) -> None:
        self.data_dir = data_dir
        self.cluster = cluster
        self.instance = instance
        self.args = args
        self.log_path = data_dir.parent / f"service-{instance}.log"
        self.lines: list[Line] = []
        self._cond = threading.Condition()
        self.proc: subprocess.Popen[str] | None = None
        self._log: IO[str] | None = None
        self._reader: threading.Thread | None = None

    def start(self, timeout: float = 30.0) -> Self:
        """Start it and wait until it is a standby or the active service."""
        assert self.proc is None or self.proc.poll() is not None
        self._log = self.log_path.open("a")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "hub",
                "serve",
                "--data-dir",
                str(self.data_dir),
                "--bind",
                "127.0.0.1",
                "--http-port",
                "0",
                "--broker",
                self.cluster.url,
                "--instance",
                self.instance,
                *self.args,
            ],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
            start_new_session=True,
        )
        stdout = self.proc.stdout
        assert stdout is not None
        start = len(self.lines)
        self._reader = threading.Thread(target=self._read, args=(stdout,), daemon=True)
        self._reader.start()
        self.wait_line("tablehub", after=start, timeout=timeout)
        return self

    def _read(self, stdout: IO[str]) -> None:
        with contextlib.suppress(ValueError, OSError), stdout:  # closed under us: done
            for text in stdout:
                with self._cond:
                    self.lines.append(Line(text.strip(), time.monotonic()))
                    self._cond.notify_all()

    def wait_line(self, prefix: str, *, after: int = 0, timeout: float = 30.0) -> Line:
        """The first line from index ``after`` on starting with ``prefix``."""
        with self._cond:
            found = self._cond.wait_for(
                lambda: any(line.text.startswith(prefix) for line in self.lines[after:]), timeout
            )
            if not found:
                msg = (
                    f"{self.instance}: no {prefix!r} line in {timeout} s: {self.lines[after:]}\n"
                    f"{self.log_text()[-3000:]}"
                )
                raise TimeoutError(msg)
            return next(line for line in self.lines[after:] if line.text.startswith(prefix))

    @property
    def active(self) -> bool:
        """Whether its last line says it is the active service."""
        with self._cond:
            return bool(self.lines) and self.lines[-1].text.startswith("tablehub ready")

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        if self.proc.poll() is None:
            os.kill(self.proc.pid, sig)

    def kill(self) -> None:
        """kill -9."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        self._close()

    def stop(self, timeout: float = 15.0) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGCONT)  # in case a test left it stopped
            os.kill(self.proc.pid, signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise
        finally:
            self._close()

    def _close(self) -> None:
        """After the process ended: its stdout reaches its end, the reader closes it."""
        if self._reader is not None:
            self._reader.join(10)
            self._reader = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.stop()
        self._close()
