"""A phone's command round trip on NATS: through the web bridge's ``/mqtt`` (proxied to
the node's MQTT port) or straight to the node's WebSocket ``/mqtt`` (figures printed,
nothing asserted).

``python -m bench.nats_bridge_rtt [--commands 300]``: one NATS node, ``hub serve
--broker``, a ``web-bridge`` beside the node; one phone session; each command (an unknown
one, rejected at once: only the path is measured) is sent and its reply awaited, one after
another, alternating between the two ways in. Prints the median and p90 per way.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from tests.integration.test_standalone_bridge import BridgeProcess
from tests.support.http import Http
from tests.support.hub import HubProcess
from tests.support.mqtt import TestClient
from tests.support.nats import NatsCluster


def _round_trip(client: TestClient) -> float:
    started = time.perf_counter()
    reply = client.send({"type": "teleport"})
    assert reply["error"]["code"] == "unknown_command", reply
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--commands", type=int, default=300)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        with (
            NatsCluster(work / "nats") as cluster,
            HubProcess(work / "hub", "--command-rate-limit", "0", broker=cluster) as hub,
            BridgeProcess(hub, cluster, data_dir=work / "bridge") as bridge,
        ):
            http = Http(hub)
            http.base = f"http://127.0.0.1:{bridge.http_port}"
            ways = {}
            for way, port in (
                ("bridge /mqtt -> node MQTT", bridge.http_port),
                ("node WebSocket /mqtt", cluster.websocket_port(0)),
            ):
                phone = http.session(way.split()[0])
                ways[way] = TestClient(
                    port, phone["client_id"], password=phone["token"], websocket_path="/mqtt"
                )
            times: dict[str, list[float]] = {way: [] for way in ways}
            for client in ways.values():
                client.__enter__()
            try:
                for _ in range(args.commands):
                    for way, client in ways.items():
                        times[way].append(_round_trip(client))
            finally:
                for client in ways.values():
                    client.__exit__(None, None, None)
    for way, seconds in times.items():
        ms = sorted(1000 * s for s in seconds[10:])  # the first ones warm up
        p90 = ms[int(0.9 * (len(ms) - 1))]
        print(f"{way:<28} median {statistics.median(ms):.2f} ms  p90 {p90:.2f} ms  (n={len(ms)})")


if __name__ == "__main__":
    main()
