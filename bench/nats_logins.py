"""Login time through the hub's NATS auth callout (figures printed, nothing asserted).

``python -m bench.nats_logins [--nodes 3] [--logins 60]``: a cluster from ``hub
nats-config`` on random high ports, ``hub serve --broker`` answering its logins, then
MQTT logins spread over the nodes, one after another: a phone's session token and a ``hub
users`` password (argon2 ~125 ms by design, the first time: successes are cached). Prints
the median and p90 from CONNECT to CONNACK.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
from pathlib import Path

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from tests.support.http import Http
from tests.support.hub import HubProcess, password_of
from tests.support.nats import NatsCluster


def _login_seconds(port: int, client_id: str, password: str, username: str | None) -> float:
    """CONNECT to a successful CONNACK (then a clean disconnect)."""
    connected = threading.Event()
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id)
    client.username_pw_set(username or client_id, password)

    def on_connect(_c: paho.Client, _u: object, _f: object, reason: object, _p: object) -> None:
        if not getattr(reason, "is_failure", True):
            connected.set()

    client.on_connect = on_connect
    started = time.monotonic()
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        if not connected.wait(10):
            msg = f"login of {client_id} on port {port} failed"
            raise RuntimeError(msg)
        return time.monotonic() - started
    finally:
        client.disconnect()
        client.loop_stop()


def _report(label: str, seconds: list[float]) -> None:
    ordered = sorted(seconds)
    p90 = ordered[int(0.9 * (len(ordered) - 1))]
    print(
        f"{label:<22} n={len(seconds):<4} median {statistics.median(seconds) * 1000:6.1f} ms"
        f"  p90 {p90 * 1000:6.1f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--nodes", type=int, default=3)
    parser.add_argument("--logins", type=int, default=60)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        with (
            NatsCluster(root / "nats", nodes=args.nodes) as cluster,
            HubProcess(root / "var", broker=cluster) as hub,
        ):
            ports = [cluster.mqtt_port(k) for k in range(args.nodes)]
            phone = Http(hub).session("Bench")
            operator = password_of(hub, "operator")
            sessions = [
                _login_seconds(ports[i % len(ports)], phone["client_id"], phone["token"], None)
                for i in range(args.logins)
            ]
            users = [
                _login_seconds(ports[i % len(ports)], f"op-{i}", operator, "operator")
                for i in range(args.logins)
            ]
    print(f"NATS {args.nodes} node(s), logins answered by the hub's callout:")
    _report("phone session token", sessions)
    _report("hub users password", users)


if __name__ == "__main__":
    main()
