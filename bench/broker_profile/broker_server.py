"""A bare broker in its own process for the micro-benchmarks: the hub's, stock amqtt, or
Mosquitto, all on 127.0.0.1, an ephemeral port, no authentication.

    .venv/bin/python -m bench.broker_profile.broker_server hub|stock

prints ``port N`` once listening and runs until SIGTERM. ``start(kind)`` does that from a
benchmark and returns the process and port (Mosquitto gets a minimal config file).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bench.targets import free_port

REPO = Path(__file__).resolve().parents[2]


@dataclass
class Running:
    kind: str
    proc: subprocess.Popen[bytes]
    port: int

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def start(kind: str) -> Running:
    if kind == "mosquitto":
        port = free_port()
        conf = Path(tempfile.mkdtemp(prefix="mosq-")) / "bench.conf"
        conf.write_text(
            f"listener {port} 127.0.0.1\nallow_anonymous true\nset_tcp_nodelay true\n"
            "max_queued_messages 100000\nuser root\n"
        )
        proc = subprocess.Popen(
            ["/usr/sbin/mosquitto", "-c", str(conf)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError):
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                return Running(kind, proc, port)
            time.sleep(0.02)
        proc.kill()
        raise RuntimeError("mosquitto did not start")
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.broker_profile.broker_server", kind],
        cwd=REPO,
        stdout=subprocess.PIPE,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().decode()
    if not line.startswith("port "):
        proc.kill()
        raise RuntimeError(f"broker did not start: {line!r}")
    return Running(kind, proc, int(line.split()[1]))


async def _serve(kind: str) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if kind == "hub":
        from hub.broker import BrokerOptions, EmbeddedBroker  # noqa: PLC0415

        options = BrokerOptions(bind="127.0.0.1", port=0, max_connections=10_000)
        async with EmbeddedBroker(options) as broker:
            print(f"port {broker.port}", flush=True)
            await stop.wait()
        return
    from amqtt.broker import Broker  # noqa: PLC0415

    stock = Broker(
        {
            "listeners": {"default": {"type": "tcp", "bind": "127.0.0.1:0"}},
            "plugins": {"hub.broker.auth.OpenAuthPlugin": {}},
        }
    )
    await stock.start()
    port = stock._servers["default"].instance.sockets[0].getsockname()[1]
    print(f"port {port}", flush=True)
    await stop.wait()
    await stock.shutdown()


if __name__ == "__main__":
    asyncio.run(_serve(sys.argv[1]))
