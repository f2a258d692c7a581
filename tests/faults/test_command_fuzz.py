"""Bad commands through real MQTT: random JSON, wrong types, huge strings, deep nesting,
invalid UTF-8, and every command in every status from every role.

For each input: exactly one reply comes, a rejection carries an error code documented in
docs/protocol.md (and ``hub/protocol/errors.py``) and changes nothing (the hub's snapshot,
read over HTTP right after the reply, is identical), an acceptance raises the version by
exactly one. At the end the hub still runs and the journal invariants hold.
"""

from __future__ import annotations

import json
import re
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hub.auth import Role
from hub.protocol import COMMAND_TYPES, MAX_PAYLOAD_BYTES, ErrorCode
from tests.faults.hubs import RestartableHub, ensure_user, operator_client
from tests.faults.invariants import assert_invariants, retained_state
from tests.faults.ledger import LEDGER, Category
from tests.support.cli import REPO
from tests.support.mqtt import TOPICS, TestClient

SENDERS = ("alice", "bob", "carol", "pi", "operator")
"""Seat 1, seat 2, an unseated player, a display, an operator."""


def documented_codes() -> set[str]:
    """The error codes in the table of docs/protocol.md."""
    text = (REPO / "docs" / "protocol.md").read_text()
    table = text.split("### Error codes", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"^\| `([a-z_]+)` \|", table, flags=re.MULTILINE))


DOCUMENTED = documented_codes()


class Table:
    """The hub under fuzz, a client per role, and the book of what it acknowledged."""

    def __init__(self, hub: RestartableHub, clients: dict[str, TestClient]) -> None:
        self.hub = hub
        self.clients = clients
        self.acked: dict[int, str | None] = {}
        self.answered: dict[tuple[str, str | None], Any] = {}
        """The accepted replies by (client, request_id): a resend gets its reply again."""
        self.inputs = 0
        self.rejected = 0
        self._snapshot_url = f"http://127.0.0.1:{hub.address.http_port}/api/games/main"

    def snapshot(self) -> dict[str, Any]:
        with urllib.request.urlopen(self._snapshot_url, timeout=10) as response:
            data: dict[str, Any] = json.loads(response.read())
        return data

    def send(self, sender: str, payload: bytes | dict[str, Any], game: str = "main") -> Any:
        """Send one input and check what it did; returns the reply."""
        client = self.clients[sender]
        before = self.snapshot()
        reply = client.send(payload, topic=TOPICS.game_command(game, sender))
        after = self.snapshot()
        self.inputs += 1
        assert isinstance(reply, dict), reply
        assert set(reply) <= {"ok", "version", "error", "request_id"}, reply
        request_id = reply.get("request_id")
        if reply["ok"] is True and self.answered.get((sender, request_id)) == reply:
            assert after == before, f"a resent command was applied again: {reply}"
            return reply
        if reply["ok"] is True:
            assert after["version"] == before["version"] + 1 == reply["version"], reply
            self.acked[reply["version"]] = request_id
            if request_id is not None:
                self.answered[sender, request_id] = reply
            return reply
        assert reply["ok"] is False, reply
        assert reply["error"]["code"] in DOCUMENTED, reply
        assert isinstance(reply["error"]["message"], str), reply
        assert after == before, f"a rejected command changed the game: {reply}"
        self.rejected += 1
        return reply

    def command(self, sender: str, command: dict[str, Any]) -> Any:
        """A command that must be accepted (setting the table up)."""
        reply = self.send(sender, command)
        assert reply["ok"], (sender, command, reply)
        return reply


@pytest.fixture(scope="module")
def table(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Table]:
    work: Path = tmp_path_factory.mktemp("command-fuzz")
    data_dir = work / "var"
    with RestartableHub(data_dir, "--command-rate-limit", "0") as hub:
        hub.start()
        port = hub.address.mqtt_port
        roles = {"alice": Role.PLAYER, "bob": Role.PLAYER, "carol": Role.PLAYER, "pi": Role.DISPLAY}
        clients = {
            name: TestClient(port, name, password=ensure_user(data_dir, name, role))
            for name, role in roles.items()
        }
        clients["operator"] = operator_client(hub.address, "operator")
        for client in clients.values():
            client.__enter__()
        try:
            yield Table(hub, clients)
            assert hub.running, "the hub died under fuzzing"
        finally:
            for client in clients.values():
                client.close()


def test_the_documented_codes_are_the_codes_the_hub_has() -> None:
    assert {code.value for code in ErrorCode} == DOCUMENTED


# --- every command in every status from every role -----------------------------------------

PROBES: tuple[dict[str, Any], ...] = (
    {"type": "join", "name": "Zed"},
    {"type": "join", "name": "Zed", "seat": 1},
    {"type": "leave"},
    {"type": "rename", "name": "Renamed"},
    {"type": "start", "max_rounds": 2},
    {"type": "end_turn", "points": 3},
    {"type": "end_turn", "points": 3, "expected_version": 0},
    {"type": "pause"},
    {"type": "resume"},
    {"type": "reset"},
    {"type": "undo"},
    {"type": "kick", "seat": 2},
)
STATUSES = ("not_started", "in_progress", "paused", "finished")


def _arrange(table: Table, status: str) -> dict[str, Any]:
    """Alice in seat 1, Bob in seat 2, the game in ``status``; the snapshot."""
    table.command("operator", {"type": "reset"})
    for seat, holder in ((1, "alice"), (2, "bob")):
        seated = table.snapshot()["players"][seat - 1]["client_id"]
        if seated != holder:
            if seated is not None:
                table.command("operator", {"type": "kick", "seat": seat})
            for player in table.snapshot()["players"]:
                if player["client_id"] == holder:  # in the other seat
                    table.command("operator", {"type": "kick", "seat": player["id"]})
            table.command(holder, {"type": "join", "name": holder.title(), "seat": seat})
    if status != "not_started":
        table.command("operator", {"type": "start", "max_rounds": 1 if status == "finished" else 2})
    if status == "paused":
        table.command("alice", {"type": "pause"})
    if status == "finished":
        table.command("alice", {"type": "end_turn", "points": 1})
        table.command("bob", {"type": "end_turn", "points": 2})
    arranged = table.snapshot()
    assert arranged["status"] == status, arranged
    return arranged


def _same_table(a: dict[str, Any], b: dict[str, Any]) -> bool:
    ignore = ("version", "updated_at")
    return {k: v for k, v in a.items() if k not in ignore} == {
        k: v for k, v in b.items() if k not in ignore
    }


@pytest.mark.timeout(120)
def test_every_command_in_every_status_from_every_role(table: Table) -> None:
    codes: set[str] = set()
    for status in STATUSES:
        arranged = _arrange(table, status)
        for sender in SENDERS:
            for probe in PROBES:
                if not _same_table(table.snapshot(), arranged):
                    arranged = _arrange(table, status)
                reply = table.send(sender, probe)
                codes.add(reply["error"]["code"] if not reply["ok"] else "ok")
        for sender in SENDERS:  # and in a game the hub does not run
            reply = table.send(sender, {"type": "end_turn"}, game="nope")
            assert reply["error"]["code"] == "unknown_game", reply
    LEDGER.add(Category.COMMAND_FUZZ, inputs=len(STATUSES) * len(SENDERS) * (len(PROBES) + 1))
    # the probes reach the rules, not just the parser
    assert {"forbidden", "not_seated", "wrong_status", "not_your_turn", "ok"} <= codes, codes


# --- random and hostile payloads -----------------------------------------------------------

_leaf = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30)
)
json_values = st.recursive(
    _leaf,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)
_EDGES: list[Any] = [0, 1, 2, 3, -1, 99, 100, 1000, 1001, 2**63, 1.0, 2.5, True, False, None]
_EDGES += ["1", "", " ", "x" * 24, "x" * 25, "\u0007", "\ud800", "é", [], {}, [1], {"a": 1}]
edge_values = st.sampled_from(_EDGES)
field_values = edge_values | json_values
commands = st.fixed_dictionaries(
    {"type": st.sampled_from(sorted(COMMAND_TYPES)) | st.text(max_size=12)},
    optional={
        "name": field_values,
        "seat": field_values,
        "points": field_values,
        "max_rounds": field_values,
        "request_id": field_values | st.text(min_size=60, max_size=70),
        "expected_version": field_values,
        "extra": json_values,
    },
)


names = st.text(st.characters(codec="utf-8", categories=("L", "N", "P", "Zs")), max_size=26)
valid_commands = st.one_of(
    st.fixed_dictionaries(
        {"type": st.just("join"), "name": names}, optional={"seat": st.sampled_from([1, 2])}
    ),
    names.map(lambda name: {"type": "rename", "name": name}),
    st.integers(1, 99).map(lambda rounds: {"type": "start", "max_rounds": rounds}),
    st.integers(0, 1000).map(lambda points: {"type": "end_turn", "points": points}),
    st.sampled_from([1, 2]).map(lambda seat: {"type": "kick", "seat": seat}),
    st.sampled_from(
        [{"type": kind} for kind in ("leave", "pause", "resume", "reset", "undo", "start")]
    ),
)


def _nested(depth: int, inner: str) -> str:
    return "[" * depth + inner + "]" * depth


def _sized(size: int) -> bytes:
    """A rename of exactly ``size`` bytes (the name is too long past 24 chars anyway)."""
    head, tail = b'{"type":"rename","name":"', b'"}'
    return head + b"x" * (size - len(head) - len(tail)) + tail


payloads = st.one_of(
    valid_commands.map(lambda c: json.dumps(c).encode()),
    valid_commands.map(lambda c: json.dumps(c, ensure_ascii=False).encode()),
    commands.map(lambda c: json.dumps(c).encode()),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.binary(max_size=200),
    st.binary(min_size=1, max_size=8).map(
        lambda bad: b'{"type":"rename","name":"' + bad + b'\xff"}'
    ),
    st.sampled_from([MAX_PAYLOAD_BYTES - 1, MAX_PAYLOAD_BYTES, MAX_PAYLOAD_BYTES + 1]).map(_sized),
    st.integers(min_value=MAX_PAYLOAD_BYTES + 2, max_value=60_000).map(_sized),
    st.integers(min_value=10, max_value=6000).map(lambda d: _nested(d, "").encode()),
    st.integers(min_value=10, max_value=6000).map(
        lambda d: ('{"type":"rename","name":' + _nested(d, '"x"') + "}").encode()
    ),
    st.sampled_from(
        [
            b"",
            b"null",
            b"[]",
            b'"join"',
            b'{"type":"end_turn","points":NaN}',
            b'{"type":"start","max_rounds":Infinity}',
            b'{"type":"join","type":"leave"}',
            b'{"type":"join","name":"A"',
            b'\xef\xbb\xbf{"type":"leave"}',
            b'{"type":"rename","name":"\\ud800"}',
        ]
    ),
)


@pytest.mark.timeout(180)
@settings(
    max_examples=300,
    deadline=None,
    derandomize=True,  # a fixed corpus: the same 300 inputs every run
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    sender=st.sampled_from(SENDERS),
    payload=payloads,
    game=st.sampled_from(["main"] * 6 + ["nope", "x" * 40]),
)
def test_random_payloads_are_answered_with_documented_codes(
    table: Table, sender: str, payload: bytes, game: str
) -> None:
    table.send(sender, payload, game)
    LEDGER.add(Category.COMMAND_FUZZ, inputs=1)


def test_the_fuzzed_hub_still_plays(table: Table) -> None:
    """After everything above: a plain game still works, and nothing acked was lost."""
    _arrange(table, "in_progress")
    table.command("alice", {"type": "end_turn", "points": 4})
    table.command("bob", {"type": "end_turn", "points": 5})
    data_dir = table.hub.address.data_dir
    acked = {v: rid for v, rid in table.acked.items() if rid is not None}
    assert_invariants(data_dir, acked, retained=retained_state(table.hub.address))
    LEDGER.add(Category.COMMAND_FUZZ, acked=len(table.acked), rejected=table.rejected)
