"""Subscriptions in a tree of topic levels, so matching a topic costs its depth, not the
number of filters.

amqtt keeps ``{filter: [(session, qos)]}`` and, for every message, runs ``Broker._matches``
(splitting both strings) against every filter: with 1,000 phones each holding its own reply
filter, one publish costs 1,000 matches. Here a publish walks one path of the tree, plus the
``+`` and ``#`` branches on the way.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Generic, TypeVar

__all__ = ["TopicTree"]

T = TypeVar("T")


class _Node(Generic[T]):
    __slots__ = ("children", "entries")

    def __init__(self) -> None:
        self.children: dict[str, _Node[T]] = {}
        self.entries: dict[str, T] = {}


class TopicTree(Generic[T]):
    """Maps (topic filter, key) -> entry; ``match(topic)`` yields the entry dicts of every
    filter matching the topic. Keys are client ids: one entry per client and filter.

    Filters must be valid (``+``/``#`` alone in their level, ``#`` last); topics starting
    with ``$`` are not matched by filters starting with a wildcard [MQTT-4.7.2-1].
    """

    def __init__(self) -> None:
        self._root: _Node[T] = _Node()
        self.size = 0

    def get(self, topic_filter: str, key: str) -> T | None:
        node: _Node[T] | None = self._root
        for level in topic_filter.split("/"):
            node = node.children.get(level) if node is not None else None
            if node is None:
                return None
        return node.entries.get(key) if node is not None else None

    def add(self, topic_filter: str, key: str, entry: T) -> None:
        """Add or replace the entry of ``key`` on ``topic_filter``."""
        node = self._root
        for level in topic_filter.split("/"):
            child = node.children.get(level)
            if child is None:
                child = node.children[level] = _Node()
            node = child
        if key not in node.entries:
            self.size += 1
        node.entries[key] = entry

    def remove(self, topic_filter: str, key: str) -> T | None:
        """Remove and return the entry of ``key`` on ``topic_filter`` (pruning empty nodes)."""
        path: list[tuple[_Node[T], str]] = []
        node = self._root
        for level in topic_filter.split("/"):
            child = node.children.get(level)
            if child is None:
                return None
            path.append((node, level))
            node = child
        entry = node.entries.pop(key, None)
        if entry is None:
            return None
        self.size -= 1
        for parent, level in reversed(path):
            child = parent.children[level]
            if child.entries or child.children:
                break
            del parent.children[level]
        return entry

    def match(self, topic: str) -> list[dict[str, T]]:
        """The entry dicts (key -> entry) of all filters matching ``topic``, non-empty ones
        only. A key may appear in several of them (overlapping filters of one client)."""
        levels = topic.split("/")
        last = len(levels)
        found: list[dict[str, T]] = []
        # depth-first over (node, index of the next level); wildcards may not match a
        # first level starting with "$" [MQTT-4.7.2-1]
        stack: list[tuple[_Node[T], int]] = [(self._root, 0)]
        dollar = topic.startswith("$")
        while stack:
            node, index = stack.pop()
            children = node.children
            if not children:
                if index == last and node.entries:
                    found.append(node.entries)
                continue
            wild = not (dollar and index == 0)
            if wild:
                every = children.get("#")
                if every is not None and every.entries:
                    found.append(every.entries)  # "a/#" also matches "a" [MQTT-4.7.1-2]
            if index == last:
                if node.entries:
                    found.append(node.entries)
                continue
            if wild:
                one = children.get("+")
                if one is not None:
                    stack.append((one, index + 1))
            child = children.get(levels[index])
            if child is not None:
                stack.append((child, index + 1))
        return found

    def __iter__(self) -> Iterator[tuple[str, str, T]]:
        """Every (filter, key, entry)."""
        stack: list[tuple[_Node[T], str]] = [(self._root, "")]
        while stack:
            node, prefix = stack.pop()
            for key, entry in node.entries.items():
                yield prefix, key, entry
            for level, child in node.children.items():
                stack.append((child, f"{prefix}/{level}" if node is not self._root else level))
