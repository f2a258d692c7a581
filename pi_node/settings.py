"""The Pi node's settings: one typed object per process.

Precedence: command-line options > ``PI_NODE_*`` environment variables (nested with
``__``: ``PI_NODE_PINS__START=17``) > the TOML config file (``--config``,
``PI_NODE_CONFIG``, else ``config/pi_node.toml`` when present) > defaults. Bad values fail
at start with a message naming the setting, never showing the password.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal, Self
from urllib.parse import unquote, urlencode, urlsplit, urlunsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from hub.protocol import BrokerUrl, Topics, parse_broker_url, valid_client_id, valid_game_name

__all__ = [
    "DEFAULT_CONFIG_FILE",
    "PiNodeSettings",
    "Pins",
    "SettingsError",
    "load_settings",
]

DEFAULT_CONFIG_FILE = Path("config/pi_node.toml")
PinId = int | str
"""A gpiozero pin: a BCM number (17) or a name ("GPIO17", "BOARD11")."""


class SettingsError(Exception):
    """The settings are invalid; the message says which and why."""


class Pins(BaseModel):
    """Where the buttons and LEDs are wired (BCM numbers or gpiozero pin names)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    start: PinId = 17
    """The "start/next" button: start a new game, or resume a paused one."""
    pause: PinId = 27
    """The "pause" button."""
    led_seat1: PinId = 23
    """Lit while seat 1 is to move (blinks while the game is paused)."""
    led_seat2: PinId = 24
    pull_up: bool = True
    """Buttons wired between the pin and ground (pressed = low)."""
    bounce_time: Annotated[float, Field(ge=0, le=1)] = 0.05
    """Seconds of contact bounce to ignore (0 = none)."""

    @field_validator("start", "pause", "led_seat1", "led_seat2", mode="before")
    @classmethod
    def _pin(cls, value: object) -> object:
        if isinstance(value, bool):
            msg = "a pin is a BCM number (17) or a name (GPIO17)"
            raise ValueError(msg)  # noqa: TRY004 - pydantic reports only ValueError as invalid
        if isinstance(value, str):
            value = value.strip()
            if value.isdigit():
                return int(value)
            if not value:
                msg = "a pin is a BCM number (17) or a name (GPIO17)"
                raise ValueError(msg)
        return value

    @model_validator(mode="after")
    def _distinct(self) -> Self:
        used = [self.start, self.pause, self.led_seat1, self.led_seat2]
        if len({str(pin) for pin in used}) != len(used):
            msg = f"the four pins must differ, got {used}"
            raise ValueError(msg)
        return self


class PiNodeSettings(BaseSettings):
    """Everything ``pi-node`` can be told."""

    model_config = SettingsConfigDict(
        env_prefix="PI_NODE_", env_nested_delimiter="__", extra="forbid", frozen=True
    )

    broker: SecretStr = SecretStr("mqtt://127.0.0.1:1883")
    """``mqtt://USER:PASS@HOST:PORT`` of the hub's broker; USER is the node's identity."""
    username: str | None = None
    """The display user (overrides the URL's user); also the MQTT client id."""
    password: SecretStr | None = None
    """The display user's password (overrides the URL's password)."""
    topic_root: str = "tablehub"
    game: str = "main"
    join_url: str | None = None
    """Overrides the join link the hub publishes: the phones' join page, ``?game=&code=``
    is added. Default: none, the hub's link (``JoinCode.url``) is shown."""
    cache_path: Path = Path("var/pi-node-cache.json")
    """The last snapshot seen, shown (marked stale) when the hub is unreachable."""
    gpio: Literal["auto", "mock", "none"] = "auto"
    """auto: real GPIO if there is any, else none; mock: gpiozero's mock pins; none."""
    pins: Pins = Pins()
    screen: str = "auto"
    """auto (this terminal, if stdout is one), off, stdout, or a tty device (/dev/tty1)."""
    keepalive: Annotated[int, Field(ge=2, le=600)] = 15
    reconnect_min: Annotated[float, Field(gt=0, le=60)] = 0.5
    reconnect_max: Annotated[float, Field(gt=0, le=600)] = 30.0
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    @field_validator("topic_root")
    @classmethod
    def _check_root(cls, value: str) -> str:
        Topics(value)  # raises ValueError with the reason
        return value

    @field_validator("game")
    @classmethod
    def _check_game(cls, value: str) -> str:
        if not valid_game_name(value):
            msg = f"invalid game name {value!r}: use a-z, 0-9, '_' and '-', at most 32"
            raise ValueError(msg)
        return value

    @field_validator("broker")
    @classmethod
    def _check_broker(cls, value: SecretStr) -> SecretStr:
        parse_broker_url(value.get_secret_value())  # raises ValueError without the secret
        return value

    @field_validator("join_url")
    @classmethod
    def _check_join_url(cls, value: str | None) -> str | None:
        if value is not None:
            parts = urlsplit(value)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                msg = "the join URL must look like http://HOST:8080/"
                raise ValueError(msg)
        return value

    @field_validator("screen")
    @classmethod
    def _check_screen(cls, value: str) -> str:
        if value not in ("auto", "off", "stdout") and not value.startswith("/"):
            msg = "screen must be auto, off, stdout or a terminal device such as /dev/tty1"
            raise ValueError(msg)
        return value

    @model_validator(mode="after")
    def _check_identity(self) -> Self:
        address = self.broker_address
        username = self.username or address.username
        if not username:
            msg = (
                "no username: give the display user in the broker URL"
                " (mqtt://pi:PASS@HUB:1883) or as username"
            )
            raise ValueError(msg)
        if not valid_client_id(username):
            msg = f"invalid username {username!r}: use letters, digits, '_', '.', '-'"
            raise ValueError(msg)
        if self.password is None and address.password is None:
            msg = "no password: give it in the broker URL or as password (PI_NODE_PASSWORD)"
            raise ValueError(msg)
        if self.reconnect_min > self.reconnect_max:
            msg = "reconnect_min must not exceed reconnect_max"
            raise ValueError(msg)
        return self

    # --- derived ------------------------------------------------------------------------
    @property
    def broker_address(self) -> BrokerUrl:
        return parse_broker_url(self.broker.get_secret_value())

    @property
    def identity(self) -> str:
        """The username: the node's identity in every topic, and its MQTT client id."""
        name = self.username or self.broker_address.username
        assert name is not None  # checked by _check_identity
        return name

    @property
    def secret(self) -> SecretStr:
        secret = self.password or self.broker_address.password
        assert secret is not None  # checked by _check_identity
        return secret

    @property
    def topics(self) -> Topics:
        return Topics(self.topic_root)

    def join_link(self, code: str | None, from_hub: str | None = None) -> str | None:
        """The URL the phones open: the hub's join link (``from_hub``), unless ``join_url``
        overrides it (the join page with the game and, when known, the code); None while
        neither is known."""
        if self.join_url is None:
            return from_hub
        parts = urlsplit(self.join_url)
        keep = [(k, v) for k, v in _query_pairs(parts.query) if k not in ("game", "code")]
        query = [*keep, ("game", self.game)]
        if code is not None:
            query.append(("code", code))
        return urlunsplit(parts._replace(path=parts.path or "/", query=urlencode(query)))

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml_file = settings_cls.model_config.get("toml_file")
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if toml_file is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=toml_file))
        return tuple(sources)


def _query_pairs(query: str) -> list[tuple[str, str]]:
    pairs = []
    for part in query.split("&"):
        if part:
            key, _, value = part.partition("=")
            pairs.append((unquote(key), unquote(value)))
    return pairs


def _config_file(explicit: Path | None) -> Path | None:
    if explicit is not None:
        if not explicit.is_file():
            msg = f"config file {explicit} does not exist"
            raise SettingsError(msg)
        return explicit
    from_env = os.environ.get("PI_NODE_CONFIG")
    if from_env:
        return _config_file(Path(from_env))
    return DEFAULT_CONFIG_FILE if DEFAULT_CONFIG_FILE.is_file() else None


def load_settings(config: Path | None = None, **overrides: Any) -> PiNodeSettings:
    """Build the settings; ``overrides`` (command-line options) win over everything."""
    toml_file = _config_file(config)

    class _FromFile(PiNodeSettings):
        model_config = SettingsConfigDict(toml_file=toml_file)

    given = {key: value for key, value in overrides.items() if value is not None}
    source = f" (config file {toml_file})" if toml_file else ""
    try:
        return PiNodeSettings.model_validate(_FromFile(**given).model_dump())
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'settings'}: {err['msg']}"
            for err in exc.errors(include_url=False)
        )
        msg = f"invalid settings{source}: {problems}"
        raise SettingsError(msg) from exc
    except tomllib.TOMLDecodeError as exc:
        msg = f"invalid settings{source}: not valid TOML: {exc}"
        raise SettingsError(msg) from exc
