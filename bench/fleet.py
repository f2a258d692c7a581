"""The coordinator's side of the worker processes: spawn, ask, gather, stop for sure."""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from types import TracebackType
from typing import Any, Generic, Protocol, Self, TypeVar, overload

from bench.errors import BenchError
from bench.worker import WorkerSpec, worker_main

__all__ = ["Fleet"]


class _Spec(Protocol):
    @property
    def name(self) -> str: ...


S = TypeVar("S", bound=_Spec)


class Fleet(Generic[S]):
    """``with Fleet(specs) as fleet:`` one process per spec, each with its clients.

    The processes run ``bench.worker`` (the default) or another entry point with the same
    request protocol (``Fleet(specs, venue_main)``)."""

    @overload
    def __init__(self: Fleet[WorkerSpec], specs: list[WorkerSpec]) -> None: ...
    @overload
    def __init__(self, specs: list[S], main: Callable[[S, Connection], None]) -> None: ...
    def __init__(
        self, specs: list[Any], main: Callable[[Any, Connection], None] = worker_main
    ) -> None:
        self.specs: list[S] = specs
        self._main = main
        self._procs: list[BaseProcess] = []
        self._conns: list[Connection] = []

    def __enter__(self) -> Self:
        ctx = multiprocessing.get_context("spawn")
        try:
            for spec in self.specs:
                mine, theirs = ctx.Pipe()
                proc = ctx.Process(target=self._main, args=(spec, theirs), name=spec.name)
                proc.daemon = True
                proc.start()
                theirs.close()
                self._procs.append(proc)
                self._conns.append(mine)
            for index in range(len(self.specs)):
                self._receive(index, "spawned", 60.0)
        except BaseException:
            self._stop()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop()

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self._procs if p.pid is not None]

    def __len__(self) -> int:
        return len(self.specs)

    def ask(self, index: int, op: str, answer_within: float, **args: Any) -> dict[str, Any]:
        """Send one request to one worker and wait for its answer."""
        self._conns[index].send((op, args))
        return self._receive(index, op, answer_within)

    def ask_all(
        self, op: str, answer_within: float, indices: list[int] | None = None, **args: Any
    ) -> list[dict[str, Any]]:
        """Send the request to these workers (default: all) at once, then gather."""
        chosen = list(range(len(self.specs))) if indices is None else indices
        for index in chosen:
            self._conns[index].send((op, args))
        deadline = time.monotonic() + answer_within
        return [self._receive(index, op, max(0.1, deadline - time.monotonic())) for index in chosen]

    def _receive(self, index: int, op: str, timeout: float) -> dict[str, Any]:
        conn, name = self._conns[index], self.specs[index].name
        if not conn.poll(timeout):
            msg = f"worker {name}: no answer to {op!r} in {timeout:.0f} s"
            raise BenchError(msg)
        try:
            got, result = conn.recv()
        except EOFError as exc:
            msg = f"worker {name} died during {op!r}"
            raise BenchError(msg) from exc
        if got != op:
            msg = f"worker {name}: answered {got!r} to {op!r}"
            raise BenchError(msg)
        if "error" in result:
            msg = f"worker {name} failed {op!r}: {result['error']}\n{result.get('trace', '')}"
            raise BenchError(msg)
        answer: dict[str, Any] = result
        return answer

    def _stop(self) -> None:
        for conn in self._conns:
            try:
                conn.send(("close", {}))
            except OSError:
                continue
        deadline = time.monotonic() + 15
        for proc in self._procs:
            proc.join(max(0.1, deadline - time.monotonic()))
        for proc in self._procs:
            if proc.is_alive():
                proc.terminate()
                proc.join(3)
            if proc.is_alive():
                proc.kill()
                proc.join(3)
        for conn in self._conns:
            conn.close()
        self._procs, self._conns = [], []
