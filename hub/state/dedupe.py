"""The dedupe window in memory: the last replies per client, by request id. Pure data.

The service looks a command up here before applying it and records the reply it gave;
the journal holds the same window durably (``hub.state.journal.Remembered``), and the
service rebuilds this one from it at start.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable

from hub.protocol import Reply
from hub.state.journal import DEDUPE_WINDOW, Remembered

__all__ = ["DedupeWindow"]


class DedupeWindow:
    """The last ``size`` replies per client; an older one is forgotten."""

    def __init__(self, size: int = DEDUPE_WINDOW, remembered: Iterable[Remembered] = ()) -> None:
        self._size = size
        self._clients: dict[str, OrderedDict[str, Reply]] = {}
        for item in remembered:
            self.put(item.client_id, item.request_id, item.reply)

    def get(self, client_id: str, request_id: str) -> Reply | None:
        replies = self._clients.get(client_id)
        return None if replies is None else replies.get(request_id)

    def put(self, client_id: str, request_id: str, reply: Reply) -> None:
        replies = self._clients.setdefault(client_id, OrderedDict())
        replies[request_id] = reply
        replies.move_to_end(request_id)
        while len(replies) > self._size:
            replies.popitem(last=False)

    def forget(self, client_id: str, request_id: str) -> None:
        """Drop one reply (its journal write failed, so it was never remembered)."""
        replies = self._clients.get(client_id)
        if replies is not None:
            replies.pop(request_id, None)

    def __len__(self) -> int:
        return sum(len(replies) for replies in self._clients.values())
