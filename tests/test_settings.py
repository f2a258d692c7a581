"""Settings: defaults, precedence (overrides > HUB_* env > TOML file > defaults), errors."""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from hub.protocol import MAX_PAYLOAD_BYTES, Topics
from hub.settings import DEFAULT_CONFIG_FILE, HubSettings, SettingsError, load_settings

REPO = Path(__file__).resolve().parents[1]
REPO_CONFIG = REPO / DEFAULT_CONFIG_FILE


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No HUB_* variables from the outside, and no config/hub.toml in the working dir."""
    for name in list(os.environ):
        if name.upper().startswith("HUB_"):
            monkeypatch.delenv(name)
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)


def _toml(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "hub.toml"
    path.write_text(text, encoding="utf-8")
    return path


def _as_setting(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


# --- defaults ---------------------------------------------------------------------------


def test_repo_config_lists_every_setting_with_the_code_default() -> None:
    with REPO_CONFIG.open("rb") as f:
        file_values = tomllib.load(f)
    text = REPO_CONFIG.read_text(encoding="utf-8")
    commented = set(re.findall(r"^#\s*([a-z_]+)\s*=", text, flags=re.MULTILINE))
    assert set(file_values) | commented == set(HubSettings.model_fields)
    for name in commented:  # shown as an example only: off by default
        assert HubSettings.model_fields[name].default is None, name
    code_defaults = {name: f.default for name, f in HubSettings.model_fields.items()}
    for name, value in file_values.items():
        default = code_defaults[name]
        expected = Path(value) if isinstance(default, Path) else _as_setting(value)
        assert default == expected, name
        assert type(default) is type(expected), name


def test_repo_config_loads_to_the_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)  # config/hub.toml is found from the working directory
    assert load_settings() == HubSettings()
    assert load_settings(REPO_CONFIG) == HubSettings()


def test_defaults_without_a_config_file() -> None:
    settings = load_settings()
    assert settings == HubSettings()
    assert settings.mqtt_port == 1883
    assert settings.http_port == 8080
    assert settings.games == ("main",)
    assert settings.max_rounds == 5
    assert settings.max_payload_bytes == MAX_PAYLOAD_BYTES
    assert settings.topics == Topics("tablehub")


def test_settings_are_frozen() -> None:
    settings = load_settings()
    with pytest.raises(ValidationError):
        settings.mqtt_port = 1  # type: ignore[misc]


# --- precedence -------------------------------------------------------------------------


def test_file_beats_defaults(tmp_path: Path) -> None:
    config = _toml(tmp_path, 'mqtt_port = 1884\ngames = ["a", "b"]\ndata_dir = "/srv/hub"\n')
    settings = load_settings(config)
    assert settings.mqtt_port == 1884
    assert settings.games == ("a", "b")
    assert settings.data_dir == Path("/srv/hub")
    assert settings.http_port == 8080  # not in the file: the default


def test_env_beats_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = _toml(tmp_path, 'mqtt_port = 1884\nhttp_port = 8081\ngames = ["a"]\n')
    monkeypatch.setenv("HUB_MQTT_PORT", "1885")
    monkeypatch.setenv("HUB_GAMES", '["c", "d"]')
    settings = load_settings(config)
    assert settings.mqtt_port == 1885
    assert settings.games == ("c", "d")
    assert settings.http_port == 8081  # only in the file


def test_overrides_beat_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = _toml(tmp_path, 'mqtt_port = 1884\ntopic_root = "file"\nmax_rounds = 3\n')
    monkeypatch.setenv("HUB_MQTT_PORT", "1885")
    monkeypatch.setenv("HUB_TOPIC_ROOT", "env")
    settings = load_settings(config, mqtt_port=1886, topic_root=None, max_rounds=None)
    assert settings.mqtt_port == 1886
    assert settings.topic_root == "env"  # a None override is "not given"
    assert settings.max_rounds == 3


def test_overrides_beat_defaults() -> None:
    settings = load_settings(None, data_dir=Path("/tmp/x"), bind="127.0.0.1", http_port=0)
    assert (settings.data_dir, settings.bind, settings.http_port) == (
        Path("/tmp/x"),
        "127.0.0.1",
        0,
    )


def test_hub_config_env_names_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HUB_CONFIG", str(_toml(tmp_path, "max_rounds = 9\n")))
    assert load_settings().max_rounds == 9


def test_explicit_config_beats_hub_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HUB_CONFIG", str(_toml(tmp_path, "max_rounds = 9\n")))
    other = tmp_path / "other.toml"
    other.write_text("max_rounds = 4\n")
    assert load_settings(other).max_rounds == 4


def test_default_config_file_in_the_working_directory(tmp_path: Path) -> None:
    (Path.cwd() / "config").mkdir()
    (Path.cwd() / DEFAULT_CONFIG_FILE).write_text('log_level = "DEBUG"\n')
    assert load_settings().log_level == "DEBUG"


@pytest.mark.parametrize("via_env", [False, True])
def test_missing_config_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, via_env: bool
) -> None:
    missing = tmp_path / "missing.toml"
    if via_env:
        monkeypatch.setenv("HUB_CONFIG", str(missing))
    with pytest.raises(SettingsError, match=r"missing\.toml"):
        load_settings(None if via_env else missing)


# --- bad values -------------------------------------------------------------------------

BAD_VALUES = [
    ("mqtt_port", "70000", 70000),
    ("http_port", "-1", -1),
    ("mqtt_port", "abc", "abc"),
    ("games", '["Bad Name"]', ["Bad Name"]),
    ("games", '["main", "x/y"]', ["main", "x/y"]),
    ("games", "[]", []),
    ("topic_root", "a//b", "a//b"),
    ("topic_root", "hub/#", "hub/#"),
    ("topic_root", "", ""),
    ("max_rounds", "0", 0),
    ("max_rounds", "100", 100),
    ("max_payload_bytes", "10", 10),
    ("stats_interval", "0", 0),
    ("command_rate_limit", "-1", -1),
    ("command_burst", "0", 0),
    ("log_level", "TRACE", "TRACE"),
]


@pytest.mark.parametrize(("key", "env_value", "file_value"), BAD_VALUES)
def test_bad_value_in_the_file(tmp_path: Path, key: str, env_value: str, file_value: Any) -> None:
    config = tmp_path / "bad.toml"
    config.write_text(f"{key} = {_toml_value(file_value)}\n")
    with pytest.raises(SettingsError) as info:
        load_settings(config)
    assert key in str(info.value)
    assert "bad.toml" in str(info.value)


@pytest.mark.parametrize(("key", "env_value", "file_value"), BAD_VALUES)
def test_bad_value_in_the_env(
    monkeypatch: pytest.MonkeyPatch, key: str, env_value: str, file_value: Any
) -> None:
    monkeypatch.setenv(f"HUB_{key.upper()}", env_value)
    with pytest.raises(SettingsError) as info:
        load_settings()
    assert key in str(info.value)


@pytest.mark.parametrize(("key", "env_value", "file_value"), BAD_VALUES)
def test_bad_override(key: str, env_value: str, file_value: Any) -> None:
    with pytest.raises(SettingsError) as info:
        load_settings(None, **{key: file_value})
    assert key in str(info.value)


def test_a_bad_file_value_hidden_by_env_is_not_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = _toml(tmp_path, "mqtt_port = 70000\n")
    monkeypatch.setenv("HUB_MQTT_PORT", "1999")
    assert load_settings(config).mqtt_port == 1999


def test_unknown_key_in_the_file(tmp_path: Path) -> None:
    config = _toml(tmp_path, "mqtt_port = 1884\nmqtt_prot = 1885\n")
    with pytest.raises(SettingsError, match="mqtt_prot"):
        load_settings(config)


def test_unknown_override() -> None:
    with pytest.raises(SettingsError, match="colour"):
        load_settings(None, colour="blue")


def test_every_problem_is_named(tmp_path: Path) -> None:
    config = _toml(tmp_path, 'mqtt_port = 70000\ngames = ["No"]\n')
    with pytest.raises(SettingsError) as info:
        load_settings(config)
    assert "mqtt_port" in str(info.value)
    assert "games" in str(info.value)


def test_not_toml(tmp_path: Path) -> None:
    config = _toml(tmp_path, "mqtt_port = = 3\n")
    with pytest.raises((SettingsError, tomllib.TOMLDecodeError)):
        load_settings(config)


def _toml_value(value: Any) -> str:
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return str(value)
