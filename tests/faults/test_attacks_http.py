"""Attacks on the web bridge's HTTP side: cross-site posts, oversize and broken bodies,
spoofed ``X-Forwarded-For``, idle WebSockets. Every answer is a clear 4xx, never a 5xx,
and the hub logs no traceback (``RestartableHub`` checks).
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from websockets.sync.client import ClientConnection, connect

from tests.faults.hubs import RestartableHub
from tests.faults.ledger import LEDGER, Category
from tests.faults.web import Api, http_request
from tests.support.mqtt import TestClient

JSON = {"Content-Type": "application/json"}
MAX_BODY = 65_536  # max_body_bytes' default


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[RestartableHub]:
    with RestartableHub(tmp_path / "var") as running:
        running.start()
        yield running


def _operator(hub: RestartableHub) -> str:
    password = (hub.address.data_dir / "operator.txt").read_text().strip()
    return "Basic " + base64.b64encode(f"operator:{password}".encode()).decode()


@pytest.mark.timeout(60)
def test_cross_origin_posts_are_refused_and_change_nothing(hub: RestartableHub) -> None:
    port = hub.address.http_port
    api = Api(hub.address)
    code = api.join_code()
    auth = _operator(hub)
    rotate = "/api/games/main/join-code"
    for origin in ("http://evil.example", "null", f"http://localhost:{port}", "https://127.0.0.1"):
        for content_type in ("application/x-www-form-urlencoded", "text/plain"):  # simple
            status, body = http_request(
                port,
                "POST",
                rotate,
                b"x=1",
                headers={"Authorization": auth, "Origin": origin, "Content-Type": content_type},
            )
            assert status == 403, (origin, body)
            assert json.loads(body)["error"]["code"] == "cross_origin"
    assert api.join_code() == code  # nothing rotated
    same = {"Authorization": auth, "Origin": f"http://127.0.0.1:{port}"}
    assert http_request(port, "POST", rotate, headers=same)[0] == 200  # the page itself
    assert http_request(port, "POST", rotate, headers={"Authorization": auth})[0] == 200  # curl
    LEDGER.add(Category.AUTH_ATTACKS, inputs=8, refused=8)


@pytest.mark.timeout(60)
def test_oversize_and_broken_bodies_get_short_clear_answers(hub: RestartableHub) -> None:
    port = hub.address.http_port
    big = b'{"game": "main", "name": "' + b"a" * (10 * 1024 * 1024) + b'", "join_code": "1"}'
    status, body = http_request(port, "POST", "/api/sessions", big, headers=JSON)
    assert status == 413, body[:200]
    chunks = (b"a" * 4096 for _ in range(40))  # sent chunked: no Content-Length to go by
    status, body = http_request(port, "POST", "/api/sessions", chunks, headers=JSON)
    assert status == 413, body[:200]
    within = b'{"game": "main", "name": "' + b"a" * (MAX_BODY - 100) + b'", "join_code": "1"}'
    broken = {
        "too long a name, echoed before": within,
        "NaN": b'{"game": "main", "name": NaN, "join_code": "1"}',
        "lone surrogate in the name": b'{"game": "main", "name": "a\\ud800", "join_code": "1"}',
        "lone surrogate in the code": b'{"game": "main", "name": "Al", "join_code": "\\ud800"}',
        "not JSON": b'{"game": ',
        "not an object": b"[1, 2, 3]",
        "Infinity": b'{"game": "main", "name": "Al", "join_code": Infinity}',
    }
    for what, payload in broken.items():
        status, body = http_request(port, "POST", "/api/sessions", payload, headers=JSON)
        assert status in (400, 422), (what, status, body[:300])
        assert len(body) < 2048, (what, len(body))  # no copy of the input
    LEDGER.add(Category.AUTH_ATTACKS, inputs=2 + len(broken), refused=2 + len(broken))


@pytest.mark.timeout(60)
def test_x_forwarded_for_is_ignored_unless_a_proxy_is_trusted(hub: RestartableHub) -> None:
    port = hub.address.http_port
    code = Api(hub.address).join_code()
    seconds = []
    for i in range(4):  # each claims another machine; the throttle counts 127.0.0.1 four times
        wrong = f"{(int(code) + 1 + i) % 1_000_000:06d}"
        attempt = json.dumps({"game": "main", "name": "Eve", "join_code": wrong}).encode()
        started = time.monotonic()
        status, _ = http_request(
            port,
            "POST",
            "/api/sessions",
            attempt,
            headers={**JSON, "X-Forwarded-For": f"10.9.8.{i + 1}"},
        )
        seconds.append(time.monotonic() - started)
        assert status == 403
    print(f"\nfour wrong codes under four spoofed addresses: {[round(s, 2) for s in seconds]} s")
    assert seconds[-1] >= 0.9 * 2.0  # the 4th failure of one address (a fresh one: 0.25 s)
    LEDGER.add(Category.AUTH_ATTACKS, inputs=4, refused=4)


@pytest.mark.timeout(90)
def test_idle_websockets_do_not_lock_a_phone_out(tmp_path: Path) -> None:
    limit = 20
    env = {
        "HUB_WS_MAX_CONNECTIONS": str(limit),
        "HUB_MAX_CONNECTIONS": str(limit),
        "HUB_CONNECT_TIMEOUT": "30",  # the idle sockets outlive the phone's 10 s to log in
    }
    with RestartableHub(tmp_path / "var", env=env) as hub:
        hub.start()
        address = hub.address
        session = Api(address).session("Pia")
        idle: list[ClientConnection] = []
        try:
            for _ in range(limit + 10):  # more than the limit; none sends a CONNECT
                idle.append(
                    connect(
                        f"ws://127.0.0.1:{address.http_port}/mqtt",
                        subprotocols=["mqtt"],  # type: ignore[list-item]
                        open_timeout=10,
                    )
                )
            started = time.monotonic()
            with TestClient(
                address.http_port,
                session["client_id"],
                password=session["token"],
                websocket_path="/mqtt",
            ) as phone:
                seconds = time.monotonic() - started
                assert phone.send({"type": "join", "name": "Pia"})["ok"]
            print(f"\na phone beside {len(idle)} idle WebSockets logged in in {seconds:.2f} s")
        finally:
            for ws in idle:
                ws.close()
    LEDGER.add(Category.AUTH_ATTACKS, inputs=len(idle), refused=0)
