"""``hub nats-config``: the files it writes (pure checks; test_cluster.py starts them)."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import nkeys
import pytest

from hub.nats.config import Cluster, read_callout, write_cluster
from hub.protocol.broker_url import parse_broker_url
from tests.support.cli import run_cli


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_three_nodes_are_written_as_the_issue_describes(tmp_path: Path) -> None:
    out = tmp_path / "cluster"
    done = run_cli("nats-config", "--nodes", "3", "--out", str(out), "--base-port", "24000")
    assert done.returncode == 0, done.stderr
    description = json.loads((out / "cluster.json").read_text())
    assert set(description) == {"nodes", "service_url"}
    nodes = description["nodes"]
    assert [n["name"] for n in nodes] == ["node1", "node2", "node3"]
    assert set(nodes[0]) == {"name", "config", "mqtt", "websocket", "cluster"}
    assert nodes[1] == {
        "name": "node2",
        "config": str((out / "node2" / "nats.conf").resolve()),
        "mqtt": "127.0.0.1:24011",
        "websocket": "ws://127.0.0.1:24012/mqtt",
        "cluster": "127.0.0.1:24013",
    }
    url = parse_broker_url(description["service_url"])
    assert url.username == "service"
    assert url.endpoints == (("127.0.0.1", 24001), ("127.0.0.1", 24011), ("127.0.0.1", 24021))
    assert url.callout == str((out / "callout.json").resolve())
    for secret in ("cluster.json", "callout.json", "node1/nats.conf", "node3/nats.conf"):
        assert _mode(out / secret) == 0o600, secret
    conf = (out / "node2" / "nats.conf").read_text()
    assert 'server_name: "node2"' in conf
    assert 'routes: [ "nats://127.0.0.1:24003", "nats://127.0.0.1:24013",' in conf
    assert 'mqtt { listen: "127.0.0.1:24011" }' in conf
    assert 'websocket { listen: "127.0.0.1:24012", no_tls: true }' in conf
    assert str((out / "node2" / "jetstream").resolve()) in conf
    assert url.password is not None
    assert url.password.get_secret_value() in conf
    callout = read_callout(out / "callout.json")
    issuer = nkeys.from_seed(bytearray(callout.issuer_seed.get_secret_value().encode()))
    assert f"issuer: {issuer.public_key.decode()}" in conf
    assert callout.servers == (
        "nats://127.0.0.1:24000",
        "nats://127.0.0.1:24010",
        "nats://127.0.0.1:24020",
    )
    assert f'password: "{callout.password.get_secret_value()}"' in conf
    assert callout.system_user == "sys"
    assert callout.system_password is not None
    assert f'user: sys, password: "{callout.system_password.get_secret_value()}"' in conf


def test_one_node_has_no_cluster_block_and_fresh_keys_each_time(tmp_path: Path) -> None:
    first = write_cluster(tmp_path / "a", count=1, base_port=0)
    second = write_cluster(tmp_path / "b", count=1, base_port=0)
    assert isinstance(first, Cluster)
    assert first.nodes[0].cluster is None
    assert "cluster {" not in Path(first.nodes[0].config).read_text()
    seeds = {
        read_callout(out / "callout.json").issuer_seed.get_secret_value()
        for out in (tmp_path / "a", tmp_path / "b")
    }
    assert len(seeds) == 2
    assert first.service_url != second.service_url


def test_three_machines_differ_only_in_addresses(tmp_path: Path) -> None:
    cluster = write_cluster(tmp_path, count=3, bind="10.0.0.1,10.0.0.2,10.0.0.3")
    assert [n.mqtt for n in cluster.nodes] == ["10.0.0.1:14221", "10.0.0.2:14231", "10.0.0.3:14241"]
    conf = Path(cluster.nodes[2].config).read_text()
    assert 'listen: "10.0.0.3:14240"' in conf
    assert '"nats://10.0.0.1:14223", "nats://10.0.0.2:14233", "nats://10.0.0.3:14243"' in conf


@pytest.mark.parametrize(
    ("nodes", "base", "bind"), [(0, 24000, "h"), (3, 65530, "h"), (3, 24000, "h1,h2")]
)
def test_impossible_clusters_are_refused(tmp_path: Path, nodes: int, base: int, bind: str) -> None:
    done = run_cli(
        "nats-config",
        *("--nodes", str(nodes), "--out", str(tmp_path)),
        *("--base-port", str(base), "--bind", bind),
    )
    assert done.returncode == 2
    assert done.stderr.startswith("hub: ")
