"""Broker URLs: one broker, or every node of a cluster (and a NATS callout file)."""

from __future__ import annotations

import pytest

from hub.protocol.broker_url import parse_broker_url


def test_one_broker() -> None:
    url = parse_broker_url("mqtt://pi:s%40cret@hub.local:1884")
    assert (url.host, url.port, url.username) == ("hub.local", 1884, "pi")
    assert url.password is not None
    assert url.password.get_secret_value() == "s@cret"
    assert url.endpoints == (("hub.local", 1884),)
    assert url.callout is None
    assert str(url) == "mqtt://pi:***@hub.local:1884"


def test_a_cluster_lists_every_node_first_one_first() -> None:
    url = parse_broker_url("mqtt://service:pw@h1:1,h2,[::1]:3?callout=/etc/x%20y/callout.json")
    assert url.endpoints == (("h1", 1), ("h2", 1883), ("::1", 3))
    assert (url.host, url.port) == ("h1", 1)
    assert url.callout == "/etc/x y/callout.json"
    assert str(url) == "mqtt://service:***@h1:1,h2:1883,[::1]:3"


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("http://h:1", "must look like"),
        ("mqtt://u:p@", "no host"),
        ("mqtt://u:p@h1:1,:2", "no host"),
        ("mqtt://u:p@h1:1,h2:x", "invalid port"),
    ],
)
def test_bad_urls_say_why_without_the_password(text: str, why: str) -> None:
    with pytest.raises(ValueError, match=why) as raised:
        parse_broker_url(text)
    assert "p@" not in str(raised.value)


def test_a_process_beside_node_k_tries_it_first() -> None:
    url = parse_broker_url("mqtt://service:pw@h1:1,h2:2,h3:3?callout=/c.json")
    beside = url.beside(2)
    assert beside.endpoints == (("h2", 2), ("h3", 3), ("h1", 1))
    assert (beside.host, beside.port, beside.rotation) == ("h2", 2, 1)
    assert beside.callout == "/c.json"
    assert beside.beside(3).endpoints == (("h1", 1), ("h2", 2), ("h3", 3))  # turned again
    assert beside.beside(3).rotation == 0
    assert url.beside(1) == url
    with pytest.raises(ValueError, match="3 node"):
        url.beside(4)
