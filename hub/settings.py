"""The hub's settings: one typed object per process.

Precedence: command-line options > ``HUB_*`` environment variables > the TOML config
file (``--config``, ``HUB_CONFIG``, else ``config/hub.toml`` when present) > defaults.
Bad values fail at start with a message naming the setting.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from hub.protocol import MAX_PAYLOAD_BYTES, Topics, valid_game_name
from hub.protocol.broker_url import BrokerUrl, parse_broker_url
from hub.public_url import validate_public_url

__all__ = ["DEFAULT_CONFIG_FILE", "HubSettings", "SettingsError", "load_settings"]

DEFAULT_CONFIG_FILE = Path("config/hub.toml")
Port = Annotated[int, Field(ge=0, le=65535)]


class SettingsError(Exception):
    """The settings are invalid; the message says which and why."""


class HubSettings(BaseSettings):
    """Everything ``hub serve`` can be told."""

    model_config = SettingsConfigDict(env_prefix="HUB_", extra="forbid", frozen=True)

    data_dir: Path = Path("var")
    bind: str = "0.0.0.0"  # noqa: S104 - phones and the Pi join over the LAN
    mqtt_port: Port = 1883
    http_port: Port = 8080
    public_url: str | None = None
    """The address phones open (``http://192.168.1.20:8080``): join links and QR codes.
    Unset: this machine's LAN address with the real HTTP port (never loopback)."""
    topic_root: str = "tablehub"
    games: tuple[str, ...] = ("main",)
    max_rounds: Annotated[int, Field(ge=1, le=99)] = 5
    """Rounds per game when ``start`` does not say."""
    default_turn_seconds: Annotated[int, Field(ge=5, le=3600)] | None = None
    """Seconds per turn (the turn clock) when ``start`` does not say; None: no clock."""
    max_payload_bytes: Annotated[int, Field(ge=256, le=1024 * 1024)] = MAX_PAYLOAD_BYTES
    stats_interval: Annotated[float, Field(gt=0)] = 10.0
    broker: SecretStr | None = None
    """``mqtt://USER:PASS@HOST:PORT`` of an external broker to use instead of the embedded
    one (the service then logs in as USER)."""
    broker_node: Annotated[int, Field(ge=1)] = 1
    """Which node of the broker URL this process stands beside (from 1): it connects there
    first (the web bridge also hands its phones' ``/mqtt`` to that node)."""
    instance: Annotated[str, Field(min_length=1, max_length=64)] | None = None
    """This service's instance name in ``R/status`` (None: host name and pid)."""
    lease_seconds: Annotated[float, Field(ge=0.5, le=60)] = 1.5
    """On a NATS cluster: how long the active service's lease lasts without renewal (it
    renews it every third of that); a standby takes over once it lapsed."""
    command_rate_limit: Annotated[float, Field(ge=0)] = 20.0
    """Commands per second per client; 0 turns the limit off."""
    command_burst: Annotated[int, Field(ge=1)] = 40
    session_ttl: Annotated[float, Field(gt=0)] = 12 * 3600.0
    """Seconds a phone's player session (its MQTT token) stays valid."""
    session_sweep_interval: Annotated[float, Field(gt=0, le=3600)] = 2.0
    """Seconds between checks that end the connections of expired sessions (and of
    sessions revoked by ``hub sessions revoke``; a kick or the API ends them at once)."""
    max_sessions_per_game: Annotated[int, Field(ge=0)] = 200
    """Live player sessions a game may hold (0 = no cap); more get HTTP 429."""
    max_sessions_per_address: Annotated[int, Field(ge=0)] = 20
    """Live player sessions one network address may hold (0 = no cap); more get 429."""
    join_code_digits: Annotated[int, Field(ge=4, le=6)] = 6
    ws_max_connections: Annotated[int, Field(ge=1)] = 1000
    """MQTT-over-WebSocket connections the web bridge holds at once; more are refused."""
    max_connections: Annotated[int, Field(ge=1)] = 4000
    """MQTT connections the embedded broker holds at once (TCP and WebSocket together);
    more get CONNACK "server unavailable". The hub raises its open-file limit to fit."""
    max_unauthenticated: Annotated[int, Field(ge=1)] = 256
    """MQTT connections (TCP and WebSocket) not logged in yet, held apart from
    ``max_connections``; more are closed at once."""
    ws_max_unauthenticated: Annotated[int, Field(ge=1)] = 64
    """MQTT-over-WebSocket connections not logged in yet, held apart from
    ``ws_max_connections``; more are closed with 1013."""
    connect_timeout: Annotated[float, Field(gt=0, le=60)] = 5.0
    """Seconds a new MQTT connection (TCP or WebSocket) may take to send its CONNECT."""
    login_throttle_base: Annotated[float, Field(ge=0, le=60)] = 0.25
    """Seconds the first failed login of an address locks it; each further failure within
    a minute doubles it, up to ``login_throttle_cap``."""
    login_throttle_cap: Annotated[float, Field(gt=0, le=600)] = 5.0
    join_code_max_failures: Annotated[int, Field(ge=1)] = 30
    """Wrong join codes (from any address) after which a game's code rotates by itself."""
    password_check_workers: Annotated[int, Field(ge=1, le=16)] = 2
    """Threads for argon2 password checks (HTTP Basic and MQTT logins), apart from the rest."""
    password_checks_max: Annotated[int, Field(ge=1)] = 32
    """Password checks waiting or running at once (2 hashing per address); more are refused
    unchecked."""
    max_body_bytes: Annotated[int, Field(ge=1024)] = 64 * 1024
    """Largest HTTP request body; larger ones get 413."""
    trusted_proxies: tuple[str, ...] = ()
    """Addresses of reverse proxies whose ``X-Forwarded-For`` is believed; none by default
    (the client's own address counts, for throttling and logs)."""
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    @field_validator("topic_root")
    @classmethod
    def _check_root(cls, value: str) -> str:
        Topics(value)  # raises ValueError with the reason
        return value

    @field_validator("public_url")
    @classmethod
    def _check_public_url(cls, value: str | None) -> str | None:
        return None if value is None else validate_public_url(value)

    @field_validator("games")
    @classmethod
    def _check_games(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            msg = "at least one game is needed"
            raise ValueError(msg)
        for name in value:
            if not valid_game_name(name):
                msg = f"invalid game name {name!r}: use a-z, 0-9, '_' and '-', at most 32"
                raise ValueError(msg)
        return value

    @field_validator("login_throttle_cap")
    @classmethod
    def _check_cap(cls, value: float, info: ValidationInfo) -> float:
        base = info.data.get("login_throttle_base")
        if base is not None and value < base:
            msg = "login_throttle_cap must be at least login_throttle_base"
            raise ValueError(msg)
        return value

    @field_validator("broker")
    @classmethod
    def _check_broker(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            parse_broker_url(value.get_secret_value())  # raises ValueError without the secret
        return value

    @model_validator(mode="after")
    def _check_broker_node(self) -> HubSettings:
        if self.broker is not None:
            nodes = len(parse_broker_url(self.broker.get_secret_value()).endpoints)
            if self.broker_node > nodes:
                msg = f"broker_node {self.broker_node}: the broker URL names {nodes} node(s)"
                raise ValueError(msg)
        return self

    @property
    def broker_url(self) -> BrokerUrl | None:
        if self.broker is None:
            return None
        return parse_broker_url(self.broker.get_secret_value()).beside(self.broker_node)

    @property
    def topics(self) -> Topics:
        return Topics(self.topic_root)

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


def _config_file(explicit: Path | None) -> Path | None:
    if explicit is not None:
        if not explicit.is_file():
            msg = f"config file {explicit} does not exist"
            raise SettingsError(msg)
        return explicit
    from_env = os.environ.get("HUB_CONFIG")
    if from_env:
        return _config_file(Path(from_env))
    return DEFAULT_CONFIG_FILE if DEFAULT_CONFIG_FILE.is_file() else None


def load_settings(config: Path | None = None, **overrides: Any) -> HubSettings:
    """Build the settings; ``overrides`` (command-line options) win over everything."""
    toml_file = _config_file(config)

    class _FromFile(HubSettings):
        model_config = SettingsConfigDict(toml_file=toml_file)

    given = {key: value for key, value in overrides.items() if value is not None}
    try:
        return HubSettings.model_validate(_FromFile(**given).model_dump())
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'settings'}: {err['msg']}"
            for err in exc.errors(include_url=False)
        )
        source = f" (config file {toml_file})" if toml_file else ""
        msg = f"invalid settings{source}: {problems}"
        raise SettingsError(msg) from exc
