"""The README's "Running on an existing broker" steps, run literally and in order as a
script: only the paths and ports are swapped for temporary ones (and mosquitto keeps root,
as pytest's 0700 temp dirs are closed to the user it would drop to). Then the operator logs
in, and a phone joins through each web bridge and plays.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.cli import REPO
from tests.support.mosquitto import (
    PORT_ATTEMPTS,
    PortTakenError,
    random_port,
    wait_mosquitto_running,
)
from tests.support.mqtt import TestClient
from tests.support.waiting import wait_until

SECTION = "## Running on an existing broker"
LONG_RUNNING = ("mosquitto -c", "hub serve", "web-bridge")


def readme_steps() -> list[str]:
    """The shell lines of the section's code blocks, in order."""
    text = (REPO / "README.md").read_text()
    section = text[text.index(SECTION) :]
    section = section[: section.index("\n## ", len(SECTION))]
    blocks = re.findall(r"```sh\n(.*?)```", section, flags=re.DOTALL)
    return [line for block in blocks for line in block.splitlines() if line.strip()]


class Script:
    """Runs the steps; long-running ones in the background, each in its own process group."""

    def __init__(self, tmp: Path, mqtt_port: int) -> None:
        self.tmp = tmp
        self.conf = tmp / "etc-mosquitto-tablehub"
        self.mqtt_port = mqtt_port
        self.env = {
            **os.environ,
            "HUB_DATA_DIR": str(tmp / "var"),
            "HUB_BIND": "127.0.0.1",
            "HUB_HTTP_PORT": "0",
        }
        self.background: list[tuple[subprocess.Popen[bytes], Path]] = []

    def rewrite(self, line: str) -> str:
        line = line.replace("/etc/mosquitto/tablehub", str(self.conf))
        line = line.replace("--port 1883", f"--port {self.mqtt_port}")
        line = line.replace("--http-port 8081", "--http-port 0")
        return line.replace(".venv/bin/", f"{REPO}/.venv/bin/")

    def run(self, line: str) -> None:
        command = self.rewrite(line)
        if not any(part in command for part in LONG_RUNNING):
            done = subprocess.run(
                ["bash", "-c", command], cwd=REPO, env=self.env, capture_output=True, check=False
            )
            assert done.returncode == 0, (line, done.stderr.decode())
            return
        if "mosquitto -c" in command:
            conf = self.conf / "mosquitto.conf"
            conf.write_text(conf.read_text() + "user root\n")
        log = self.tmp / f"step{len(self.background)}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                ["bash", "-c", f"exec {command}"],
                cwd=REPO,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.background.append((proc, log))

    def wait_for_line(self, index: int, pattern: str) -> str:
        proc, log = self.background[index]

        def found() -> bool:
            assert proc.poll() is None, log.read_text()[-2000:]
            return re.search(pattern, log.read_text()) is not None

        wait_until(found, timeout=30, what=f"{pattern!r} in {log.name}")
        match = re.search(pattern, log.read_text())
        assert match is not None
        return match.group(1)

    def stop(self) -> None:
        for proc, _log in reversed(self.background):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(10)


def post_session(http_port: int, code: str, name: str) -> dict[str, Any]:
    body = json.dumps({"game": "main", "name": name, "join_code": code}).encode()
    request = urllib.request.Request(
        f"http://127.0.0.1:{http_port}/api/sessions",
        data=body,
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        result: dict[str, Any] = json.loads(response.read())
        return result


@pytest.fixture
def script(tmp_path: Path) -> Iterator[Script]:
    """The steps up to the running hub; mosquitto's port is retried if taken meanwhile."""
    steps = readme_steps()
    assert any("mosquitto-config" in s for s in steps), steps
    # `hub serve` takes :8080 (its default): a web bridge beside it needs another port
    bridges = [s for s in steps if "web-bridge" in s]
    assert bridges, steps
    assert all("--http-port" in s and "--http-port 8080" not in s for s in bridges), bridges
    for _attempt in range(PORT_ATTEMPTS):  # mosquitto cannot take port 0: retry if taken
        run = Script(tmp_path, random_port())
        try:
            for step in steps:
                run.run(step)
                if "mosquitto -c" in step:
                    mosquitto_up(run)
            yield run
            return
        except PortTakenError:
            continue
        finally:
            run.stop()
    pytest.fail(f"mosquitto found no port it could take in {PORT_ATTEMPTS} attempts")


def mosquitto_up(run: Script) -> None:
    """Ready when its log says it is running (on a taken port it says so: PortTakenError)."""
    proc, log = run.background[-1]
    wait_mosquitto_running(proc, log, offset=0)


def test_the_readme_mosquitto_steps_work_in_order(script: Script) -> None:
    mosquitto_log = script.background[0][1]
    warnings = [line for line in mosquitto_log.read_text().splitlines() if "ACL pattern" in line]
    assert warnings == []
    hub_http = int(script.wait_for_line(1, r"tablehub ready mqtt=\S+ http=127\.0\.0\.1:(\d+)"))
    bridge_http = int(script.wait_for_line(2, r"web-bridge ready http=127\.0\.0\.1:(\d+)"))
    operator = (script.tmp / "var" / "operator.txt").read_text().strip()
    with TestClient(script.mqtt_port, "operator", password=operator) as watcher:
        watcher.subscribe("tablehub/games/main/join")
        code = watcher.on_topic("tablehub/games/main/join").json()["code"]
        assert watcher.state()["version"] == 0
        # One phone through each bridge, MQTT over the bridge's WebSocket to mosquitto.
        phones = []
        for port, name in ((hub_http, "Ann"), (bridge_http, "Bob")):
            session = post_session(port, code, name)
            phone = TestClient(
                port, session["client_id"], password=session["token"], websocket_path="/mqtt"
            )
            phones.append(phone.__enter__())
        try:
            ann, bob = phones
            assert ann.send({"type": "join", "name": "Ann"})["ok"]
            assert bob.send({"type": "join", "name": "Bob"})["ok"]
            assert ann.send({"type": "start", "max_rounds": 1})["ok"]
            assert ann.send({"type": "end_turn", "points": 2})["ok"]
            final = watcher.state(min_version=4)
            assert [p["score"] for p in final["players"]] == [2, 0]
        finally:
            for phone in phones:
                phone.close()


def test_a_taken_http_port_is_named(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [
                *(f"{REPO}/.venv/bin/hub", "serve", "--bind", "127.0.0.1", "--mqtt-port", "0"),
                *("--http-port", str(port), "--data-dir", str(tmp_path)),
            ],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert done.returncode != 0
    assert f"127.0.0.1:{port}" in done.stderr
    assert "Address already in use" in done.stderr
