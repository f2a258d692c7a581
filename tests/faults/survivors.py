"""Clients that must ride out the hub's deaths by themselves, beside the storm's players.

``CLIENT_KINDS`` is the list the kill -9 and SIGSTOP tests start: each kind is started once
with the hub's fixed address and a work directory, and after every restart of the hub its
``settle`` must show, on the wire, that it is back. The storm's paho players are always
there (``tests.faults.storm``); a new kind of client joins every chaos run by being added
to ``CLIENT_KINDS``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import IO, Protocol

from hub.auth import Role
from tests.faults.browser_phone import BrowserPhone
from tests.faults.hubs import HubAddress, ensure_user, operator_client
from tests.support.cli import REPO
from tests.support.mqtt import TOPICS

__all__ = ["CLIENT_KINDS", "ClientKind", "PiNodeProcess", "Survivor"]


class Survivor(Protocol):
    """One running client under test."""

    name: str

    def settle(self, timeout: float) -> None:
        """Return once the client is back on the (restarted) hub, proven on the wire;
        raise TimeoutError if it does not get there in ``timeout`` seconds."""

    def close(self) -> None:
        """Stop the client and everything it started."""


ClientKind = Callable[[HubAddress, Path], Survivor]
"""Starts one client against the hub at the address, with a work directory of its own."""


class PiNodeProcess:
    """``pi-node`` as its own process (as systemd runs it), logged in as display ``pi``.

    Back on a restarted hub means: its retained presence says ``online`` again. A killed
    hub's broker loses every retained message, so only a reconnected node can put it there.
    """

    name = "pi-node"

    def __init__(self, address: HubAddress, work: Path) -> None:
        self.address = address
        work.mkdir(parents=True, exist_ok=True)
        self.log_path = work / "pi-node.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith("PI_NODE_")}
        env.pop("NOTIFY_SOCKET", None)
        env.pop("JOURNAL_STREAM", None)
        env |= {
            "PI_NODE_PASSWORD": ensure_user(address.data_dir, "pi", Role.DISPLAY),
            "PI_NODE_KEEPALIVE": "2",
            "PI_NODE_RECONNECT_MIN": "0.05",
            "PI_NODE_RECONNECT_MAX": "0.5",
        }
        self._log: IO[bytes] = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "pi_node",
                "--broker",
                f"mqtt://pi@127.0.0.1:{address.mqtt_port}",
                "--screen",
                "off",
                "--gpio",
                "none",
                "--cache",
                str(work / "pi-node-cache.json"),
                "--join-url",
                f"http://127.0.0.1:{address.http_port}/",
            ],
            cwd=REPO,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def settle(self, timeout: float) -> None:
        assert self.proc.poll() is None, f"the Pi node died:\n{self.log_path.read_text()[-2000:]}"
        topic = TOPICS.client_presence("pi")
        with operator_client(self.address, "pi-watch") as watcher:
            watcher.subscribe(topic)
            online = {"state": "online"}
            watcher.wait_for(lambda m: m.topic == topic and m.json() == online, timeout)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._log.close()


CLIENT_KINDS: list[ClientKind] = [PiNodeProcess, BrowserPhone]
