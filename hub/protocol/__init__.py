"""The wire contract v1 of tablehub: topics, messages and the codec.

This package is the product's public API. It imports only pydantic, so the Pi node
and the web bridge can depend on it without pulling in the state service or broker.
See docs/protocol.md for the prose version.
"""

from hub.protocol.broker_url import BrokerUrl, parse_broker_url
from hub.protocol.codec import (
    MAX_PAYLOAD_BYTES,
    DecodeError,
    decode_command,
    decode_model,
    encode,
)
from hub.protocol.errors import ErrorCode
from hub.protocol.messages import (
    COMMAND_TYPES,
    Command,
    End,
    ErrorBody,
    Event,
    GameStatus,
    Join,
    JoinCode,
    Kick,
    Leave,
    Pause,
    PlayerView,
    Presence,
    Rename,
    Reply,
    Reset,
    Resume,
    Snapshot,
    Start,
    Stats,
    Status,
    Undo,
)
from hub.protocol.topics import (
    CLIENT_ID_PATTERN,
    GAME_NAME_PATTERN,
    CommandTopic,
    Topics,
    topic_matches,
    valid_client_id,
    valid_game_name,
)

__all__ = [
    "CLIENT_ID_PATTERN",
    "COMMAND_TYPES",
    "GAME_NAME_PATTERN",
    "MAX_PAYLOAD_BYTES",
    "BrokerUrl",
    "Command",
    "CommandTopic",
    "DecodeError",
    "End",
    "ErrorBody",
    "ErrorCode",
    "Event",
    "GameStatus",
    "Join",
    "JoinCode",
    "Kick",
    "Leave",
    "Pause",
    "PlayerView",
    "Presence",
    "Rename",
    "Reply",
    "Reset",
    "Resume",
    "Snapshot",
    "Start",
    "Stats",
    "Status",
    "Topics",
    "Undo",
    "decode_command",
    "decode_model",
    "encode",
    "parse_broker_url",
    "topic_matches",
    "valid_client_id",
    "valid_game_name",
]
