"""Several ``hub serve --broker NATS-URL --instance NAME`` processes on one cluster: each
prints ``tablehub standby ...`` or ``tablehub ready ...`` (and more of them as it takes
over or steps down); ``HubProcess`` keeps every line with the time it came."""

from __future__ import annotations

from pathlib import Path
from typing import Self

from tests.support.hub import START_TIMEOUT, HubProcess, Line
from tests.support.nats import NatsCluster

__all__ = ["Line", "ServiceProcess"]


class ServiceProcess(HubProcess):
    """``with ServiceProcess(data_dir, cluster, "a") as a:`` -> ``a.wait_line(...)``: a hub
    that may start as a standby."""

    def __init__(self, data_dir: Path, cluster: NatsCluster, instance: str, *args: str) -> None:
        super().__init__(
            data_dir,
            "--instance",
            instance,
            *args,
            log=data_dir.parent / f"service-{instance}.log",
            broker=cluster,
        )
        self.cluster = cluster
        self.instance = instance

    def start(self, timeout: float = START_TIMEOUT) -> Self:
        """Start it and wait until it is a standby or the active service."""
        after = self.spawn()
        try:
            self.wait_line("tablehub", after=after, timeout=timeout)
        except TimeoutError:
            self.kill()
            raise
        return self
