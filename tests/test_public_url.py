"""The join link's base: the configured ``public_url``, else the LAN address, never loopback."""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

import pytest

from hub.public_url import JoinLinks, join_url, lan_address, validate_public_url
from hub.settings import SettingsError, load_settings


@pytest.mark.parametrize(
    ("given", "kept"),
    [
        ("http://192.168.1.20:8080", "http://192.168.1.20:8080"),
        ("https://tablehub.lan/", "https://tablehub.lan"),
        ("http://example.org/table/", "http://example.org/table"),
    ],
)
def test_a_public_url_is_kept_without_its_trailing_slash(given: str, kept: str) -> None:
    assert validate_public_url(given) == kept


@pytest.mark.parametrize(
    "bad", ["192.168.1.20:8080", "ftp://host", "http://", "http://h/?code=1", "http://u:p@h"]
)
def test_a_bad_public_url_stops_the_hub_naming_the_setting(bad: str) -> None:
    with pytest.raises(SettingsError, match="public_url"):
        load_settings(public_url=bad)


def test_a_specific_bind_address_is_the_lan_address() -> None:
    assert lan_address("192.0.2.7") == "192.0.2.7"


@pytest.mark.parametrize("bind", ["0.0.0.0", "127.0.0.1"])
def test_unset_the_link_names_this_machine_never_loopback(bind: str) -> None:
    links = JoinLinks(None, bind)
    assert links.url("main", "123456") is None  # not before the HTTP port is known
    base = links.start(41234)
    parts = urlsplit(base)
    assert parts.scheme == "http"
    assert parts.port == 41234
    assert parts.hostname is not None
    if parts.hostname.endswith(".local"):  # a machine without any network address
        assert lan_address(bind) is None
    else:
        assert not ipaddress.ip_address(parts.hostname).is_loopback
    assert links.url("main", "123456") == f"{base}/?game=main&code=123456"


def test_a_configured_public_url_wins() -> None:
    links = JoinLinks("https://tablehub.lan", "0.0.0.0")
    assert links.url("main", "0042") == "https://tablehub.lan/?game=main&code=0042"
    assert links.start(8080) == "https://tablehub.lan"
    assert join_url("https://t", "a b", "1") == "https://t/?game=a%20b&code=1"
