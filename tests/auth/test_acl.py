"""hub.auth.acl: the rules as plain tables."""

from __future__ import annotations

import pytest

from hub.auth import Acl, Identity, Role
from hub.auth.acl import SubscribeDecision, filter_covers, filters_overlap
from hub.protocol import Topics

ACL = Acl(Topics("tablehub"))
ALICE = Identity("alice", Role.PLAYER)
PI = Identity("pi", Role.DISPLAY)
OP = Identity("op", Role.OPERATOR)
G, F, D = SubscribeDecision.GRANT, SubscribeDecision.FILTERED, SubscribeDecision.DENY


@pytest.mark.parametrize(
    ("pattern", "topic_filter", "covers"),
    [
        ("a/#", "a/b/c", True),
        ("a/#", "a", True),
        ("a/+", "a/b", True),
        ("a/+", "a/+", True),
        ("a/+", "a/#", False),
        ("a/b", "a/+", False),
        ("a/+/c", "a/b/c", True),
        ("a/+/c", "a/b/d", False),
        ("a/b", "a/b/c", False),
    ],
)
def test_filter_covers(pattern: str, topic_filter: str, covers: bool) -> None:
    assert filter_covers(pattern, topic_filter) is covers


@pytest.mark.parametrize(
    ("first", "second", "overlap"),
    [
        ("#", "a/b", True),
        ("a/+/c", "a/b/+", True),
        ("a/b", "a/c", False),
        ("a/b", "a/b/c", False),
        ("a/b/#", "a/b", True),
        ("+/+", "a", False),
        ("a/+/reply", "a/+/presence", False),
    ],
)
def test_filters_overlap(first: str, second: str, overlap: bool) -> None:
    assert filters_overlap(first, second) is overlap
    assert filters_overlap(second, first) is overlap


@pytest.mark.parametrize(
    ("who", "topic_filter", "decision"),
    [
        (ALICE, "tablehub/games/+/state", G),
        (ALICE, "tablehub/clients/alice/reply", G),
        (ALICE, "tablehub/clients/bob/reply", D),
        (ALICE, "tablehub/clients/+/reply", F),
        (ALICE, "tablehub/#", F),
        (ALICE, "#", F),
        (ALICE, "tablehub/games/+/cmd/+", D),
        (ALICE, "tablehub/games/main/join", D),
        (PI, "tablehub/games/main/join", G),
        (ALICE, "$SYS/#", D),
        (ALICE, "elsewhere/#", D),
        (OP, "$SYS/#", G),
        (OP, "#", G),
        (OP, "$TopicA/#", G),
        (ALICE, "$TopicA/#", D),
    ],
)
def test_subscribe_decisions(who: Identity, topic_filter: str, decision: SubscribeDecision) -> None:
    assert ACL.subscribe(who, topic_filter) is decision
    assert ACL.may_subscribe(who, topic_filter) is (decision is G)


@pytest.mark.parametrize(
    ("who", "topic", "readable"),
    [
        (ALICE, "tablehub/status", True),
        (ALICE, "tablehub/clients/alice/reply", True),
        (ALICE, "tablehub/clients/bob/reply", False),
        (ALICE, "tablehub/games/main/cmd/bob", False),
        (PI, "tablehub/games/main/join", True),
        (ALICE, "tablehub/games/main/join", False),
        (OP, "tablehub/clients/bob/reply", True),
    ],
)
def test_may_read(who: Identity, topic: str, readable: bool) -> None:
    assert ACL.may_read(who, topic) is readable


@pytest.mark.parametrize(
    ("who", "topic", "allowed"),
    [
        (ALICE, "tablehub/games/main/cmd/alice", True),
        (ALICE, "tablehub/games/main/cmd/bob", False),
        (ALICE, "tablehub/clients/alice/presence", True),
        (ALICE, "tablehub/games/main/state", False),
        (ALICE, "elsewhere", False),
        (OP, "elsewhere/x", True),
        (OP, "tablehub/status", False),
        (OP, "$TopicA/B", True),  # as Mosquitto allows
        (OP, "$SYS/broker/uptime", False),  # only the broker publishes there
        (ALICE, "$TopicA/B", False),
        (PI, "$TopicA/B", False),
        (Identity("svc", Role.SERVICE), "tablehub/status", True),
    ],
)
def test_may_publish(who: Identity, topic: str, allowed: bool) -> None:
    assert ACL.may_publish(who, topic) is allowed


@pytest.mark.parametrize(
    ("who", "topic", "allowed"),
    [
        (ALICE, "tablehub/games/main/cmd/alice", False),
        (ALICE, "tablehub/games/any-name/cmd/alice", False),
        (OP, "tablehub/games/main/cmd/op", False),
        (ALICE, "tablehub/clients/alice/presence", True),
        (OP, "elsewhere/cmd", True),
        (Identity("tablehub-service", Role.SERVICE), "tablehub/games/main/cmd/alice", True),
    ],
)
def test_nobody_but_the_service_retains_commands(who: Identity, topic: str, allowed: bool) -> None:
    assert ACL.may_retain(who, topic) is allowed
