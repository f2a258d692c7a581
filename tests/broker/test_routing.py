"""The pure pieces of the routing path: the topic tree, one encoding per message, eager sends.

The tree must match exactly what the spec's matching (``hub.protocol.topic_matches``) does,
``$`` topics and ``a/#`` matching ``a`` included; a message's PUBLISH bytes must be those
of the MQTT packet, whichever QoS, packet id, RETAIN or DUP.
"""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hub.broker.eager import start_eagerly
from hub.broker.encoding import EncodedPublish
from hub.broker.topictree import TopicTree
from hub.protocol import topic_matches
from tests.broker.wire import publish_packet

LEVELS = st.sampled_from(["a", "b", "", "$SYS", "$x", "c"])
TOPICS = st.lists(LEVELS, min_size=1, max_size=4).map("/".join).filter(bool)


@st.composite
def filters(draw: st.DrawFn) -> str:
    levels = draw(st.lists(st.sampled_from(["a", "b", "", "$SYS", "+"]), min_size=1, max_size=4))
    if draw(st.booleans()):
        levels.append("#")
    return "/".join(levels)


@settings(max_examples=300, deadline=None)
@given(st.lists(filters(), min_size=1, max_size=12, unique=True), TOPICS)
def test_tree_matches_what_the_spec_matches(topic_filters: list[str], topic: str) -> None:
    tree: TopicTree[str] = TopicTree()
    for n, topic_filter in enumerate(topic_filters):
        tree.add(topic_filter, f"c{n}", topic_filter)
    matched = sorted(entry for entries in tree.match(topic) for entry in entries.values())
    expected = sorted(f for f in topic_filters if topic_matches(topic, f))
    assert matched == expected


def test_tree_removes_entries_and_prunes_empty_branches() -> None:
    tree: TopicTree[int] = TopicTree()
    tree.add("a/b/c", "one", 1)
    tree.add("a/+/c", "one", 2)
    tree.add("a/b/c", "two", 3)
    assert tree.size == 3
    assert tree.remove("a/b/c", "one") == 1
    assert tree.remove("a/b/c", "one") is None
    assert [e for entries in tree.match("a/b/c") for e in entries.values()] in ([2, 3], [3, 2])
    tree.remove("a/b/c", "two")
    tree.remove("a/+/c", "one")
    assert tree.size == 0
    assert list(tree) == []
    assert tree._root.children == {}  # nothing left behind


def test_tree_replaces_a_clients_entry_on_the_same_filter() -> None:
    tree: TopicTree[int] = TopicTree()
    tree.add("x/y", "client", 0)
    tree.add("x/y", "client", 1)
    assert tree.size == 1
    assert tree.get("x/y", "client") == 1


@pytest.mark.parametrize("qos", [0, 1, 2])
@pytest.mark.parametrize("retain", [False, True])
def test_encoded_publish_is_the_mqtt_packet(qos: int, retain: bool) -> None:
    payload = b"p" * 300  # a two-byte remaining length
    message = EncodedPublish("t/\u00e9", payload)
    expected = publish_packet("t/\u00e9", payload, qos=qos, retain=retain, packet_id=513)
    if not retain:
        assert message.packet(qos, 513) == expected
    if qos == 0:
        assert message.packet(0) is message.packet(0)  # encoded once for every subscriber
    assert message.variant(qos, 513, retain=retain) == expected
    if qos:
        dup = bytearray(expected)
        dup[0] |= 0x08
        assert message.variant(qos, 513, dup=True, retain=retain) == bytes(dup)


def test_eager_start_runs_to_completion_without_a_task() -> None:
    async def main() -> None:
        steps: list[str] = []

        async def quick() -> None:
            steps.append("ran")

        before = len(asyncio.all_tasks())
        assert start_eagerly(quick()) is None
        assert steps == ["ran"]
        assert len(asyncio.all_tasks()) == before

        gate: asyncio.Future[str] = asyncio.get_running_loop().create_future()

        async def waits() -> None:
            steps.append("before")
            steps.append(await gate)

        task = start_eagerly(waits())
        assert task is not None
        assert steps == ["ran", "before"]
        gate.set_result("after")
        await task
        assert steps == ["ran", "before", "after"]

        stuck: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        cancelled = start_eagerly(_wait_and_note(stuck, steps))
        assert cancelled is not None
        await asyncio.sleep(0)
        cancelled.cancel()
        with pytest.raises(asyncio.CancelledError):
            await cancelled
        assert steps[-1] == "cancelled"

    asyncio.run(main())


async def _wait_and_note(future: asyncio.Future[str], steps: list[str]) -> None:
    try:
        await future
    except asyncio.CancelledError:
        steps.append("cancelled")
        raise
