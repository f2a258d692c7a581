"""MQTT topic filters as NATS subjects (pure), as nats-server's MQTT gateway maps them:
``/`` -> ``.``, ``+`` -> ``*``, ``#`` -> ``>``, and a ``.`` inside a level -> ``//``."""

from __future__ import annotations

from hub.auth.acl import Grants

__all__ = ["nats_permissions", "nats_subject"]


def nats_subject(topic_filter: str) -> str:
    """``R/games/+/cmd/alice`` -> ``R.games.*.cmd.alice``."""
    levels = []
    for level in topic_filter.split("/"):
        if level == "+":
            levels.append("*")
        elif level == "#":
            levels.append(">")
        else:
            levels.append(level.replace(".", "//"))
    return ".".join(levels)


def nats_permissions(grants: Grants) -> dict[str, dict[str, list[str]]]:
    """A NATS user's ``pub``/``sub`` allow lists for ``grants`` (hub.auth.acl)."""
    return {
        "pub": {"allow": [nats_subject(topic) for topic in grants.publish]},
        "sub": {"allow": [nats_subject(topic) for topic in grants.read]},
    }
