"""Pi node settings: the committed defaults, precedence (CLI > PI_NODE_* env > TOML file >
defaults), the identity, and errors that never show the password."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import pytest

from hub.protocol import parse_broker_url
from pi_node.settings import (
    DEFAULT_CONFIG_FILE,
    PiNodeSettings,
    Pins,
    SettingsError,
    load_settings,
)

REPO = Path(__file__).resolve().parents[2]
REPO_CONFIG = REPO / DEFAULT_CONFIG_FILE
BROKER = "mqtt://pi:sekrit-pw@hub.local:1884"


@pytest.fixture(autouse=True)
def _elsewhere(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No config/pi_node.toml in the working directory."""
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)


def _toml(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "pi.toml"
    path.write_text(text, encoding="utf-8")
    return path


def _default(value: Any, default: Any) -> Any:
    return Path(value) if isinstance(default, Path) else value


def test_repo_config_lists_every_setting_with_the_code_default() -> None:
    with REPO_CONFIG.open("rb") as f:
        file_values = tomllib.load(f)
    text = REPO_CONFIG.read_text(encoding="utf-8")
    commented = set(re.findall(r"^#\s*([a-z_]+)\s*=", text, flags=re.MULTILINE))
    assert set(file_values) | commented == set(PiNodeSettings.model_fields)
    for name in commented:  # examples only: unset by default
        assert PiNodeSettings.model_fields[name].default is None, name
    for name, value in file_values.items():
        default = PiNodeSettings.model_fields[name].default
        if name == "broker":
            assert default.get_secret_value() == value
        elif name == "pins":
            assert Pins(**value) == default
            assert set(value) == set(Pins.model_fields)
        else:
            assert _default(value, default) == default, name


def test_the_repo_config_with_a_broker_url_is_valid(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)
    settings = load_settings(broker=BROKER)
    assert settings.identity == "pi"
    assert settings.secret.get_secret_value() == "sekrit-pw"
    assert settings.broker_address.host == "hub.local"
    assert settings.broker_address.port == 1884
    assert settings.pins == Pins()


def test_precedence(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    config = _toml(
        tmp_path,
        f'broker = "{BROKER}"\ngame = "file"\nkeepalive = 20\n[pins]\nstart = 5\npause = 6\n',
    )
    monkeypatch.setenv("PI_NODE_GAME", "env")
    monkeypatch.setenv("PI_NODE_PINS__PAUSE", "GPIO13")
    settings = load_settings(config)
    assert settings.game == "env"  # env over file
    assert settings.keepalive == 20  # file over default
    assert settings.pins.start == 5
    assert settings.pins.pause == "GPIO13"
    assert settings.reconnect_max == 30.0  # default
    assert load_settings(config, game="cli").game == "cli"  # the command line over all


def test_config_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    config = _toml(tmp_path, f'broker = "{BROKER}"\ngame = "envfile"\n')
    monkeypatch.setenv("PI_NODE_CONFIG", str(config))
    assert load_settings().game == "envfile"


def test_the_default_config_file_is_read_from_the_working_dir(tmp_path: Path) -> None:
    (tmp_path / "cwd" / "config").mkdir()
    (tmp_path / "cwd" / DEFAULT_CONFIG_FILE).write_text(f'broker = "{BROKER}"\ngame = "here"\n')
    assert load_settings().game == "here"


def test_username_and_password_may_come_apart_from_the_url(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PI_NODE_PASSWORD", "from-env")
    settings = load_settings(broker="mqtt://hub:1883", username="table2")
    assert settings.identity == "table2"
    assert settings.secret.get_secret_value() == "from-env"
    both = load_settings(broker=BROKER)  # the explicit password wins over the URL's
    assert both.secret.get_secret_value() == "from-env"


def test_join_link() -> None:
    settings = load_settings(broker=BROKER)
    assert settings.join_link(None) is None  # not guessed from the broker's address
    hub_link = "http://192.168.1.20:8080/?game=main&code=4711"
    assert settings.join_link("4711", hub_link) == hub_link
    custom = load_settings(broker=BROKER, join_url="https://table.example/join?lang=de&game=x")
    assert custom.join_link("1") == "https://table.example/join?lang=de&game=main&code=1"


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"broker": "http://pi:sekrit-pw@hub"}, "broker: Value error, the broker URL must"),
        ({"broker": "mqtt://sekrit-pw@hub"}, "no password"),
        ({"broker": "mqtt://:sekrit-pw@hub"}, "no username"),
        ({"broker": "mqtt://pi:sekrit-pw@"}, "no host"),
        ({"broker": "mqtt://bad name:sekrit-pw@hub"}, "invalid username"),
        ({"broker": BROKER, "game": "Main"}, "game: Value error, invalid game name"),
        ({"broker": BROKER, "topic_root": "a//b"}, "topic_root"),
        ({"broker": BROKER, "join_url": "hub:8080"}, "join_url"),
        ({"broker": BROKER, "screen": "tv"}, "screen"),
        ({"broker": BROKER, "gpio": "yes"}, "gpio"),
        ({"broker": BROKER, "keepalive": 0}, "keepalive"),
        ({"broker": BROKER, "reconnect_min": 10, "reconnect_max": 1}, "reconnect_min"),
        ({"broker": BROKER, "pins": {"start": 5, "pause": 5}}, "must differ"),
        ({"broker": BROKER, "pins": {"start": True}}, "BCM number"),
        ({"broker": BROKER, "pins": {"led": 5}}, "pins.led"),
        ({"broker": BROKER, "colour": "red"}, "colour"),
    ],
)
def test_bad_settings_name_the_setting_not_the_password(
    overrides: dict[str, Any], expected: str
) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings(**overrides)
    assert expected in str(caught.value)
    assert "sekrit-pw" not in str(caught.value)


def test_bad_toml(tmp_path: Path) -> None:
    config = _toml(tmp_path, "broker = \n")
    with pytest.raises(SettingsError, match="not valid TOML"):
        load_settings(config)


def test_the_password_is_never_shown() -> None:
    settings = load_settings(broker=BROKER)
    assert "sekrit-pw" not in repr(settings)
    assert "sekrit-pw" not in str(settings.broker_address)
    assert str(parse_broker_url(BROKER)) == "mqtt://pi:***@hub.local:1884"
