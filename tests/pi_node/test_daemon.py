"""``python -m pi_node`` as systemd runs it: sd_notify, journald-style logs, SIGTERM, and
bad settings."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.pi_node.conftest import add_display_user
from tests.support.cli import REPO
from tests.support.hub import HubProcess
from tests.support.mqtt import TOPICS


class NotifySocket:
    """The datagram socket systemd would listen on."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.messages: list[dict[str, str]] = []

    def wait_for(self, key: str, value: str | None = None, timeout: float = 10.0) -> str:
        deadline = time.monotonic() + timeout
        while True:
            for message in self.messages:
                if key in message and (value is None or message[key] == value):
                    return message[key]
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                msg = f"no {key}={value} from the node in {timeout} s: {self.messages}"
                raise TimeoutError(msg)
            self.sock.settimeout(remaining)
            try:
                data = self.sock.recv(4096).decode()
            except TimeoutError:
                continue
            self.messages.append(dict(line.split("=", 1) for line in data.splitlines()))

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[NotifySocket]:
    sock = NotifySocket(tmp_path / "notify.sock")
    yield sock
    sock.close()


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PI_NODE_")}
    env.pop("NOTIFY_SOCKET", None)
    env.pop("JOURNAL_STREAM", None)
    return env | extra


def test_sigterm_disconnects_cleanly(tmp_path: Path, notify_socket: NotifySocket) -> None:
    data_dir = tmp_path / "var"
    with HubProcess(data_dir) as hub, hub.client("operator") as watcher:
        password = add_display_user(data_dir)
        presence = TOPICS.client_presence("pi")
        watcher.subscribe(presence)
        env = _env(
            NOTIFY_SOCKET=str(notify_socket.path),
            WATCHDOG_USEC="400000",
            JOURNAL_STREAM="8:12345",
            PI_NODE_PASSWORD=password,
        )
        log = (tmp_path / "pi-node.log").open("w+")
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "pi_node",
                "--broker",
                f"mqtt://pi@127.0.0.1:{hub.mqtt_port}",
                "--gpio",
                "mock",
                "--screen",
                "off",
                "--cache",
                str(tmp_path / "cache.json"),
            ],
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            notify_socket.wait_for("READY", "1")
            notify_socket.wait_for("STATUS", "live: game main v0 not_started")
            notify_socket.wait_for("WATCHDOG", "1")
            watcher.wait_for(lambda m: m.topic == presence and m.json() == {"state": "online"})
            mark = len(watcher.messages)

            proc.send_signal(signal.SIGTERM)
            code = proc.wait(30)  # a generous deadline: correctness, not speed
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(5)
        assert code == 0
        notify_socket.wait_for("STOPPING", "1")
        offline = watcher.wait_for(lambda m: m.topic == presence, after=mark)
        assert offline.json() == {"state": "offline"}

        # retained: a late subscriber sees offline too
        with hub.client("operator") as late:
            late.subscribe(presence)
            assert late.on_topic(presence).json() == {"state": "offline"}

    log.seek(0)
    output = log.read()
    log.close()
    assert "<6>pi_node.node: connected to the broker as pi" in output  # journald priorities
    assert "<6>pi_node.app: stopping" in output
    assert password not in output
    assert "Traceback" not in output


@pytest.mark.parametrize(
    ("args", "env", "expected"),
    [
        (["--broker", "http://pi:pw@hub:1883"], {}, "mqtt://USER:PASS@HOST:PORT"),
        (["--broker", "mqtt://hub:1883"], {}, "no username"),
        (["--broker", "mqtt://pi@hub:1883"], {}, "no password"),
        (["--broker", "mqtt://pi:sekrit-pw@hub:99999"], {}, "invalid port"),
        (["--broker", "mqtt://pi:sekrit-pw@hub", "--game", "No Game"], {}, "game"),
        (["--broker", "mqtt://pi:sekrit-pw@hub"], {"PI_NODE_PINS__START": "23"}, "must differ"),
        (["--broker", "mqtt://pi:sekrit-pw@hub"], {"PI_NODE_KEEPALIVE": "x"}, "keepalive"),
        (["--config", "/nonexistent.toml"], {}, "does not exist"),
    ],
)
def test_bad_settings_exit_2_with_a_message(
    args: list[str], env: dict[str, str], expected: str
) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pi_node", *args],
        cwd=REPO,
        env=_env(**env),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr.startswith("pi-node: ")
    assert expected in done.stderr
    assert "Traceback" not in done.stderr
    assert "sekrit-pw" not in done.stderr + done.stdout


def test_a_bad_config_file_names_itself(tmp_path: Path) -> None:
    config = tmp_path / "pi.toml"
    config.write_text('broker = "mqtt://pi:pw@hub:1883"\nscreen = "sideways"\n')
    done = subprocess.run(
        [sys.executable, "-m", "pi_node", "--config", str(config)],
        cwd=REPO,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 2
    assert f"config file {config}" in done.stderr
    assert "screen" in done.stderr
    assert "Traceback" not in done.stderr
