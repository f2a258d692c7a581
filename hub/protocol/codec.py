"""Bytes <-> models. The only place JSON is parsed or produced."""

from __future__ import annotations

import json
from typing import Any, TypeVar

from pydantic import BaseModel, TypeAdapter, ValidationError

from hub.protocol.errors import ErrorCode
from hub.protocol.messages import (
    COMMAND_TYPES,
    MAX_REQUEST_ID_CHARS,
    Command,
    WireModel,
)

__all__ = ["MAX_PAYLOAD_BYTES", "DecodeError", "decode_command", "decode_model", "encode"]

MAX_PAYLOAD_BYTES = 16 * 1024
_COMMAND_ADAPTER: TypeAdapter[Command] = TypeAdapter(Command)
M = TypeVar("M", bound=BaseModel)


class DecodeError(Exception):
    """A payload that is not a valid message; carries the reply's error code."""

    def __init__(self, code: ErrorCode, message: str, request_id: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.request_id = request_id


def encode(model: WireModel) -> bytes:
    """A model as compact UTF-8 JSON."""
    return json.dumps(model.to_wire(), separators=(",", ":"), ensure_ascii=False).encode()


def _reject_constant(name: str) -> Any:
    msg = f"{name} is not valid JSON"
    raise ValueError(msg)


def _load_json(payload: bytes, max_bytes: int) -> Any:
    if len(payload) > max_bytes:
        raise DecodeError(
            ErrorCode.PAYLOAD_TOO_LARGE,
            f"payload is {len(payload)} bytes; the limit is {max_bytes}",
        )
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DecodeError(ErrorCode.INVALID_JSON, f"payload is not UTF-8: {exc.reason}") from exc
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:
        raise DecodeError(ErrorCode.INVALID_JSON, f"payload is not JSON: {exc}"[:200]) from exc


def _first_error(exc: ValidationError, *, tagged: bool = False) -> str:
    err = exc.errors(include_url=False)[0]
    loc = err["loc"][1:] if tagged else err["loc"]  # drop the union's tag ("join", ...)
    where = ".".join(str(part) for part in loc) or "payload"
    return f"{where}: {err['msg']}"


def _readable_request_id(raw: object) -> str | None:
    """The request id to echo in a rejection: only one the reply can carry as UTF-8."""
    if not isinstance(raw, str) or len(raw) > MAX_REQUEST_ID_CHARS:
        return None
    try:
        raw.encode()
    except UnicodeEncodeError:  # a lone surrogate ("\ud800") cannot be sent back
        return None
    return raw


def decode_command(payload: bytes, *, max_bytes: int = MAX_PAYLOAD_BYTES) -> Command:
    """Parse a command payload; raise DecodeError with the reply's error code."""
    data = _load_json(payload, max_bytes)
    if not isinstance(data, dict):
        raise DecodeError(ErrorCode.INVALID_JSON, "a command must be a JSON object")
    request_id = _readable_request_id(data.get("request_id"))
    kind = data.get("type")
    if not isinstance(kind, str):
        raise DecodeError(
            ErrorCode.INVALID_COMMAND, "a command needs a string field 'type'", request_id
        )
    if kind not in COMMAND_TYPES:
        known = ", ".join(sorted(COMMAND_TYPES))
        raise DecodeError(
            ErrorCode.UNKNOWN_COMMAND,
            f"unknown command type {kind[:40]!r}; known: {known}",
            request_id,
        )
    try:
        return _COMMAND_ADAPTER.validate_python(data)
    except ValidationError as exc:
        raise DecodeError(
            ErrorCode.INVALID_COMMAND, _first_error(exc, tagged=True), request_id
        ) from exc


def decode_model(payload: bytes, model: type[M], *, max_bytes: int = MAX_PAYLOAD_BYTES) -> M:
    """Parse any contract payload (snapshot, presence, status...) into ``model``."""
    data = _load_json(payload, max_bytes)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise DecodeError(ErrorCode.INVALID_JSON, _first_error(exc)) from exc
