"""``web-bridge`` alone, beside ``hub serve --broker`` on Debian's mosquitto: the pages,
snapshots from the retained topics, history from the shared data dir, health, metrics,
join-code rotation published retained, and MQTT over its WebSocket proxied to mosquitto.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Self

import pytest

from tests.support.cli import REPO
from tests.support.http import Http
from tests.support.hub import ExternalBroker, HubProcess, password_of
from tests.support.mosquitto import Mosquitto
from tests.support.mqtt import TOPICS, TestClient
from tests.support.waiting import wait_until


class BridgeProcess:
    """``with BridgeProcess(hub, broker) as bridge:`` -> ``bridge.http_port``. The bridge runs
    in its own process group, which is killed on the way out whatever happened: a failed
    ready check, a timed-out wait or an exception in the body."""

    def __init__(
        self,
        hub: HubProcess | None,
        broker: ExternalBroker,
        *,
        node: int | None = None,
        data_dir: Path | None = None,
    ) -> None:
        """``node``: the broker URL's node it stands beside; ``data_dir``: its own (default
        the hub's; required without a hub, as beside several ``hub serve`` instances)."""
        if data_dir is None:
            assert hub is not None, "a bridge without a hub needs a data_dir"
            data_dir = hub.data_dir
        self.command = [
            *(sys.executable, "-c", "from hub.cli import web_bridge_main; web_bridge_main()"),
            *("--broker", broker.url, "--data-dir", str(data_dir)),
            *("--bind", "127.0.0.1", "--http-port", "0"),
            *(("--broker-node", str(node)) if node is not None else ()),
        ]
        self.proc: subprocess.Popen[str] | None = None
        self.http_port = 0

    def __enter__(self) -> Self:
        self.proc = subprocess.Popen(
            self.command,
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            start_new_session=True,  # its own process group, killed as one in _kill_group
        )
        try:
            self._read_ready_line()
        except BaseException:
            self._kill_group()
            raise
        return self

    def _read_ready_line(self) -> None:
        assert self.proc is not None
        assert self.proc.stdout is not None
        stdout = self.proc.stdout
        line: list[str] = []
        reader = threading.Thread(target=lambda: line.append(stdout.readline()), daemon=True)
        reader.start()
        reader.join(20)
        assert line, "web-bridge printed no ready line"
        assert line[0].startswith("tablehub web-bridge ready http=127.0.0.1:"), line
        assert "PASS" not in line[0]
        assert "@" not in line[0].split("broker=")[1].split(":")[0]
        self.http_port = int(line[0].split("http=127.0.0.1:")[1].split()[0])

    def _kill_group(self) -> None:
        """SIGKILL the bridge's whole process group (by its id) and reap the bridge."""
        assert self.proc is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self.proc is not None
        code: int | None = None
        try:
            if self.proc.poll() is None:
                self.proc.terminate()
            code = self.proc.wait(20)
        except subprocess.TimeoutExpired:
            pass
        finally:
            self._kill_group()  # always: also whatever the bridge started
        if exc_type is None:  # a clean stop is checked only when nothing else failed
            assert code == 0, f"web-bridge exited with {code} on SIGTERM"


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[tuple[HubProcess, BridgeProcess]]:
    data_dir = tmp_path / "var"
    with (
        Mosquitto(data_dir, tmp_path / "mosquitto") as broker,
        HubProcess(data_dir, broker=broker) as hub,
        BridgeProcess(hub, broker) as bridge,
    ):
        broker.reload("operator", password_of(hub, "operator"))
        broker.reload("tv", password_of(hub, "tv", "display"))
        broker.reload("alice", password_of(hub, "alice"))
        yield hub, bridge


def test_the_bridge_alone_serves_the_game_of_a_hub_on_mosquitto(
    stack: tuple[HubProcess, BridgeProcess],
) -> None:
    hub, bridge = stack
    http = Http(hub)
    http.base = f"http://127.0.0.1:{bridge.http_port}"
    with TestClient(hub.mqtt_port, "alice", password=password_of(hub, "alice")) as alice:
        assert alice.send({"type": "join", "name": "Alice"})["ok"]
    status, page = http("GET", "/")
    assert status == 200
    assert "phone.js" in page
    status, health = http("GET", "/healthz")
    assert status == 200
    assert health["ok"], health

    def snapshot_version() -> int:
        status, snapshot = http("GET", "/api/games/main")
        return int(snapshot["version"]) if status == 200 else -1

    wait_until(lambda: snapshot_version() == 1, what="the bridge to see version 1")
    status, history = http("GET", "/api/games/main/history")
    assert [e["type"] for e in history["events"]] == ["join"]
    status, metrics = http("GET", "/metrics")
    assert status == 200
    assert "tablehub_epoch 1" in metrics

    # A display over the bridge's WebSocket, proxied to mosquitto, sees the rotated code.
    tv = TestClient(
        bridge.http_port, "tv", password=password_of(hub, "tv", "display"), websocket_path="/mqtt"
    )
    with tv:
        tv.subscribe(TOPICS.game_join("main"))
        status, rotated = http("POST", "/api/games/main/join-code", auth=http.operator)
        assert status == 200
        message = tv.wait_for(
            lambda m: m.topic == TOPICS.game_join("main") and m.json()["code"] == rotated["code"]
        )
        # The link names the bridge's own HTTP port: that is where phones go.
        assert rotated["url"].endswith(f":{bridge.http_port}/?game=main&code={rotated['code']}")
        assert message.json() == {"game": "main", "code": rotated["code"], "url": rotated["url"]}
        assert tv.state()["version"] == 1
