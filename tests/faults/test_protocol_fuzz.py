"""Protocol attacks on the broker over raw sockets: malformed and truncated packets, wrong
remaining lengths, invalid UTF-8, wildcards in PUBLISH topics, zero-length client ids,
random frames, a CONNECT flood past ``max_connections`` and slowloris CONNECTs.

Each time the broker must close the offending connection (refusing a CONNECT first where
MQTT 3.1.1 says so) and go on serving everyone else: a player connected all along still
gets its commands answered, and new clients still get in.
"""

from __future__ import annotations

import contextlib
import resource
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.faults.hubs import RestartableHub, ensure_user, operator_client
from tests.faults.ledger import LEDGER, Category
from tests.faults.raw import (
    PINGREQ,
    connect_packet,
    encode_length,
    open_socket,
    packet,
    publish_packet,
    read_until_closed,
    split_packets,
    subscribe_packet,
)
from tests.support.mqtt import TOPICS, LoginRefusedError, NoConnackError, TestClient

CONNACK, SUBACK, PINGRESP = 2, 9, 13
MAX_CONNECTIONS = 500
"""The hub's ``HUB_MAX_CONNECTIONS`` here (default 4000): a flood past it stays quick."""
CONNECT_TIMEOUT = 10.0  # hub.broker.limits.DEFAULT_CONNECT_TIMEOUT


class Target:
    """The hub under attack, and a player (alice) connected through it all."""

    def __init__(self, hub: RestartableHub, alice: TestClient) -> None:
        self.hub = hub
        self.port = hub.address.mqtt_port
        self.alice = alice
        self.mallory = ensure_user(hub.address.data_dir, "mallory")
        self.operator = (hub.address.data_dir / "operator.txt").read_text().strip()
        self._renames = 0

    def login(self, keepalive: int = 60) -> socket.socket:
        """A raw connection logged in as player mallory."""
        sock = open_socket(self.port)
        login = connect_packet(
            "mallory", username="mallory", password=self.mallory, keepalive=keepalive
        )
        sock.sendall(login)
        assert _read_packet(sock, CONNACK)[1] == 0, "mallory was refused"
        return sock

    def assert_served(self) -> None:
        """Alice, connected all along, still gets her commands answered."""
        self._renames += 1
        reply = self.alice.send({"type": "rename", "name": f"Alice {self._renames}"}, timeout=10)
        assert reply["ok"], reply
        assert self.hub.running


def _read_packet(sock: socket.socket, kind: int, timeout: float = 5.0) -> bytes:
    """The body of the next packet of type ``kind``."""
    data = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for found, _flags, body in split_packets(data):
            if found == kind:
                return body
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    msg = f"no packet of type {kind}; got {data!r}"
    raise AssertionError(msg)


def _ended(sock: socket.socket, *, ping: bool, timeout: float) -> str:
    """What the broker made of the connection after an attack.

    ``closed``; ``refused 0xNN`` (a CONNACK with a failure code, then closed);
    ``accepted`` (CONNACK 0); ``answered`` (still open and in step: it answered a PINGREQ
    sent after the attack); ``open`` (neither closed nor answering within ``timeout``: a
    stalled or desynchronised stream).
    """
    if ping:
        with contextlib.suppress(OSError):  # already closed: read_until_closed tells
            sock.sendall(PINGREQ)
    received = b""
    deadline = time.monotonic() + timeout
    closed = False
    while not closed and (remaining := deadline - time.monotonic()) > 0:
        closed, more = read_until_closed(sock, min(remaining, 0.05))
        received += more
        kinds = [kind for kind, _f, _b in split_packets(received)]
        if PINGRESP in kinds:
            break
    packets = split_packets(received)
    connacks = [body for kind, _f, body in packets if kind == CONNACK]
    if connacks and connacks[0][1] == 0:
        return "accepted"
    if closed:
        return f"refused {connacks[0][1]:#04x}" if connacks else "closed"
    return "answered" if any(kind == PINGRESP for kind, _f, _b in packets) else "open"


def _enough_file_descriptors() -> None:
    """The flood needs over MAX_CONNECTIONS sockets here and in the hub (which inherits
    this limit): raise the soft limit as far as the hard one allows."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 2 * MAX_CONNECTIONS + 500
    if soft < wanted:
        new_soft = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (new_soft, hard))


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    _enough_file_descriptors()
    data_dir = tmp_path_factory.mktemp("protocol-fuzz") / "var"
    with RestartableHub(
        data_dir,
        "--command-rate-limit",
        "0",
        env={"HUB_MAX_CONNECTIONS": str(MAX_CONNECTIONS)},
    ) as hub:
        hub.start()
        port = hub.address.mqtt_port
        with TestClient(port, "alice", password=ensure_user(data_dir, "alice")) as alice:
            assert alice.send({"type": "join", "name": "Alice"})["ok"]
            yield Target(hub, alice)
        assert hub.running


# --- one malformed thing at a time ---------------------------------------------------------


@dataclass(frozen=True)
class Attack:
    name: str
    data: Callable[[Target], bytes]
    logged_in: bool = True
    keepalive: int = 60
    ping: bool = True
    """Send a PINGREQ after the attack (not when the attack relies on silence)."""
    wait: float = 3.0


def _bytes(data: bytes) -> Callable[[Target], bytes]:
    return lambda _t: data


def _connect_flags(flags: int) -> bytes:
    """A CONNECT as mallory with exactly these flags (user name and password present, and
    a will topic and message when the will flag is set)."""
    head = b"\x00\x04MQTT\x04" + bytes([flags | 0xC0]) + b"\x00\x3c"
    will = b"\x00\x03a/b\x00\x01x" if flags & 0x04 else b""
    return packet(0x10, head + b"\x00\x07mallory" + will + b"\x00\x07mallory\x00\x02pw")


AFTER_LOGIN = [
    Attack("wildcard + in a PUBLISH topic", _bytes(publish_packet("tablehub/+/x", b"{}"))),
    Attack("wildcard # in a PUBLISH topic", _bytes(publish_packet("tablehub/#", b"{}"))),
    Attack("invalid UTF-8 in a PUBLISH topic", _bytes(publish_packet(b"tablehub/\xc3\x28", b""))),
    Attack("U+0000 in a PUBLISH topic", _bytes(publish_packet(b"tablehub/a\x00b", b"{}"))),
    Attack("empty PUBLISH topic", _bytes(publish_packet(b"", b"{}"))),
    Attack("PUBLISH topic longer than the packet", _bytes(packet(0x30, b"\x01\xf4short"))),
    Attack("PUBLISH QoS 1 without a packet id", _bytes(packet(0x32, b"\x00\x01a"))),
    Attack("PUBLISH with QoS 3", _bytes(packet(0x36, b"\x00\x01a\x00\x01x"))),
    Attack("remaining length in 5 bytes", _bytes(b"\x30\xff\xff\xff\xff\x01")),
    Attack("remaining length past the size limit", _bytes(b"\x30" + encode_length(70_000))),
    Attack("reserved packet type 0", _bytes(b"\x00\x00")),
    Attack("reserved packet type 15", _bytes(b"\xf0\x00")),
    Attack("a CONNACK from a client", _bytes(b"\x20\x02\x00\x00")),
    Attack("SUBSCRIBE with wrong flags", _bytes(packet(0x80, b"\x00\x01\x00\x01a\x00"))),
    Attack("SUBSCRIBE without a filter", _bytes(packet(0x82, b"\x00\x01"))),
    Attack("SUBSCRIBE with invalid UTF-8", _bytes(subscribe_packet(1, (b"\xc3\x28/#", 0)))),
    Attack("SUBSCRIBE with U+0000", _bytes(subscribe_packet(1, (b"a\x00b", 0)))),
    Attack("SUBSCRIBE with QoS 3", _bytes(subscribe_packet(1, ("tablehub/status", 3)))),
    Attack("UNSUBSCRIBE with wrong flags", _bytes(packet(0xA0, b"\x00\x01\x00\x01a"))),
    Attack("UNSUBSCRIBE without a filter", _bytes(packet(0xA2, b"\x00\x01"))),
    Attack("PUBACK with a wrong length", _bytes(b"\x40\x03\x00\x01\x00")),
    Attack("PINGREQ with a body", _bytes(b"\xc0\x01\x00")),
    Attack(
        "a second CONNECT",
        lambda t: connect_packet("mallory", username="mallory", password=t.mallory),
    ),
    Attack(
        "a truncated PUBLISH, then silence",
        _bytes(b"\x30\x20\x00\x05hello"),
        keepalive=1,
        ping=False,
        wait=5.0,
    ),
]
BEFORE_LOGIN = [
    Attack("PUBLISH before CONNECT", _bytes(publish_packet("tablehub/status", b"{}")), False),
    Attack("CONNECT shorter than its fields", _bytes(b"\x10\x05\x00\x04MQ\x04"), False),
    Attack(
        "CONNECT with protocol name MQTX",
        lambda t: connect_packet(
            "mallory", username="mallory", password=t.mallory, protocol=b"MQTX"
        ),
        False,
    ),
    Attack(
        "CONNECT with protocol level 5",
        lambda t: connect_packet("mallory", username="mallory", password=t.mallory, level=5),
        False,
    ),
    Attack("CONNECT with the reserved flag set", _bytes(_connect_flags(0x03)), False),
    Attack("will retain without a will", _bytes(_connect_flags(0x22)), False),
    Attack("will QoS 3", _bytes(_connect_flags(0x1E)), False),
    Attack(
        "password without a user name",
        _bytes(packet(0x10, b"\x00\x04MQTT\x04\x42\x00\x3c\x00\x01a\x00\x02pw")),
        False,
    ),
    Attack(
        "invalid UTF-8 client id",
        lambda t: connect_packet(b"\xc3\x28", username="operator", password=t.operator),
        False,
    ),
    Attack(
        "U+0000 in the client id",
        lambda t: connect_packet(b"a\x00b", username="operator", password=t.operator),
        False,
    ),
    Attack(
        "invalid UTF-8 user name",
        lambda t: connect_packet("x", username=b"\xc3\x28", password=t.operator),
        False,
    ),
    Attack(
        "zero-length client id without a clean session",
        lambda t: connect_packet(b"", username="mallory", password=t.mallory, clean=False),
        False,
    ),
    Attack(
        "will topic with a wildcard",
        lambda t: connect_packet(
            "op-will", username="operator", password=t.operator, will=("tablehub/#", b"x")
        ),
        False,
    ),
]


ATTACKS = [pytest.param(attack, id=attack.name) for attack in AFTER_LOGIN + BEFORE_LOGIN]


@pytest.mark.timeout(60)
@pytest.mark.parametrize("attack", ATTACKS)
def test_a_malformed_packet_closes_only_its_connection(target: Target, attack: Attack) -> None:
    sock = target.login(attack.keepalive) if attack.logged_in else open_socket(target.port)
    try:
        sock.sendall(attack.data(target))
        ended = _ended(sock, ping=attack.ping, timeout=attack.wait)
    finally:
        sock.close()
    refused = ended == "closed" or ended.startswith("refused")
    LEDGER.add(Category.PROTOCOL_FUZZ, inputs=1, refused=int(refused))
    assert refused, f"{attack.name}: {ended}"
    target.assert_served()


@pytest.mark.timeout(30)
def test_nothing_is_routed_on_a_topic_that_is_not_utf8(target: Target) -> None:
    """An operator may publish outside the topic root; a topic that is not UTF-8 must still
    close its connection, and no subscriber may receive anything for it."""
    with operator_client(target.hub.address, "utf8-watcher") as watcher:
        watcher.subscribe("#")
        sock = open_socket(target.port)
        try:
            sock.sendall(connect_packet("utf8-raw", username="operator", password=target.operator))
            assert _read_packet(sock, CONNACK)[1] == 0
            sock.sendall(publish_packet(b"outside/\xc3\x28", b"mangled?", qos=1, packet_id=3))
            ended = _ended(sock, ping=True, timeout=3.0)
        finally:
            sock.close()
        watcher.publish("outside/marker", b"after")  # routed after anything from the attack
        watcher.wait_for(lambda m: m.topic == "outside/marker")
        routed = [
            m.topic
            for m in watcher.messages
            if not m.topic.startswith("tablehub/") and m.topic != "outside/marker"
        ]
    LEDGER.add(Category.PROTOCOL_FUZZ, inputs=1, refused=int(ended == "closed"))
    assert routed == [], f"delivered on a mangled topic: {routed}"
    assert ended == "closed", ended
    target.assert_served()


def test_a_zero_length_client_id_is_given_the_players_name(target: Target) -> None:
    sock = open_socket(target.port)
    try:
        sock.sendall(connect_packet(b"", username="mallory", password=target.mallory))
        assert _read_packet(sock, CONNACK)[1] == 0
        sock.sendall(subscribe_packet(7, (TOPICS.client_reply("mallory"), 1)))
        assert _read_packet(sock, SUBACK) == b"\x00\x07\x01", "not treated as mallory"
    finally:
        sock.close()
    LEDGER.add(Category.PROTOCOL_FUZZ, inputs=1)
    target.assert_served()


# --- random frames ------------------------------------------------------------------------

frames = st.lists(
    st.tuples(st.integers(0, 255), st.binary(max_size=120)), min_size=1, max_size=4
).map(lambda parts: b"".join(bytes([first]) + encode_length(len(b)) + b for first, b in parts))


@pytest.mark.timeout(120)
@settings(
    max_examples=150,
    deadline=None,
    derandomize=True,  # a fixed corpus: the same 150 inputs every run
    suppress_health_check=[HealthCheck.too_slow],
)
@given(data=frames)
def test_random_frames_leave_no_zombie(target: Target, data: bytes) -> None:
    """Whole frames of any type, flags and body after a login: the broker either closes the
    connection or still answers a PINGREQ after them; never sits on a stalled stream."""
    sock = target.login()
    try:
        sock.sendall(data)
        ended = _ended(sock, ping=True, timeout=5.0)
    finally:
        sock.close()
    LEDGER.add(Category.PROTOCOL_FUZZ, inputs=1, refused=int(ended != "answered"))
    assert ended in ("closed", "answered"), f"{ended} after {data!r}"
    target.assert_served()


# --- floods -------------------------------------------------------------------------------


class Slowloris:
    """Connections that each trickle a CONNECT one byte a second, never finishing it."""

    def __init__(self, port: int, count: int) -> None:
        self.socks: list[socket.socket] = []
        long_connect = connect_packet("s" * 200, username="nobody", password="x")
        self._rest = long_connect[2:]
        for _ in range(count):
            sock = socket.create_connection(("127.0.0.1", port), timeout=5)
            sock.sendall(long_connect[:2])
            self.socks.append(sock)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._trickle, name="slowloris", daemon=True)
        self._thread.start()

    def _trickle(self) -> None:
        sent = 0
        while not self._stop.wait(1.0) and sent < len(self._rest):
            for sock in self.socks:
                with contextlib.suppress(OSError):  # closed by the broker: good
                    sock.send(self._rest[sent : sent + 1])
            sent += 1

    def closed_by_broker(self, timeout: float) -> int:
        """How many of them the broker has closed within ``timeout``."""
        deadline = time.monotonic() + timeout
        closed = 0
        for sock in self.socks:
            if read_until_closed(sock, max(0.01, deadline - time.monotonic()))[0]:
                closed += 1
        return closed

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        for sock in self.socks:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            sock.close()


class ConnectFlood:
    """Complete, valid CONNECTs (as the operator, who may use any client id), one after the
    other, kept open: until the broker refuses one."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self.admitted: list[socket.socket] = []
        self.refused = 0

    def connect(self, client_id: str) -> str:
        sock = open_socket(self.target.port)
        sock.sendall(connect_packet(client_id, username="operator", password=self.target.operator))
        code = _read_packet(sock, CONNACK)[1]
        if code == 0:
            self.admitted.append(sock)
            return "accepted"
        closed, _ = read_until_closed(sock, 5.0)
        sock.close()
        self.refused += 1
        return f"refused {code:#04x}" if closed else f"refused {code:#04x}, left open"

    def close(self) -> None:
        for sock in self.admitted:
            sock.close()


SLOWLORIS = 200


@pytest.mark.timeout(60)
def test_a_connect_flood_past_max_connections_is_refused_and_everyone_else_is_served(
    target: Target,
) -> None:
    """Complete CONNECTs flood in past ``max_connections``: the ones past it are refused with
    CONNACK 0x03 "server unavailable", a player connected all along is served throughout,
    and once the flood is gone new clients get in again."""
    if resource.getrlimit(resource.RLIMIT_NOFILE)[0] < MAX_CONNECTIONS + 200:
        pytest.skip("the limit on open files is too low for the flood")
    flood = ConnectFlood(target)
    try:
        outcome = "accepted"
        while outcome == "accepted":
            assert len(flood.admitted) < MAX_CONNECTIONS, "max_connections is not enforced"
            outcome = flood.connect(f"flood-{len(flood.admitted)}")
            if len(flood.admitted) % 250 == 0:
                target.assert_served()
        assert outcome == "refused 0x03", outcome
        for i in range(20):  # and every one after it, at once, with the reason
            assert flood.connect(f"late-{i}") == "refused 0x03"
        target.assert_served()
    finally:
        flood.close()
        LEDGER.add(
            Category.PROTOCOL_FUZZ,
            faults=1,
            inputs=len(flood.admitted) + flood.refused,
            refused=flood.refused,
        )
    deadline = time.monotonic() + 10
    while True:  # the broker notices the flood's sockets closing by itself
        try:
            with operator_client(target.hub.address, "after-the-flood"):
                break
        except (LoginRefusedError, NoConnackError):  # CONNACK 3 until the broker catches up
            assert time.monotonic() < deadline, "no one gets in after the flood"
    target.assert_served()


@pytest.mark.timeout(60)
def test_slowloris_connects_are_closed_and_everyone_else_is_served(target: Target) -> None:
    """Connections that trickle their CONNECT a byte a second are closed once the CONNECT
    timeout is up, trickle or not; meanwhile a player connected all along is served and new
    clients get in."""
    started = time.monotonic()
    slowloris = Slowloris(target.port, SLOWLORIS)
    try:
        target.assert_served()
        with operator_client(target.hub.address, "during-slowloris"):
            pass
        remaining = CONNECT_TIMEOUT - (time.monotonic() - started)
        closed = slowloris.closed_by_broker(remaining + 10)
    finally:
        slowloris.close()
    LEDGER.add(Category.PROTOCOL_FUZZ, faults=1, inputs=SLOWLORIS, refused=closed)
    assert closed == SLOWLORIS, f"{SLOWLORIS - closed} slowloris connections still open"
    target.assert_served()
