"""NATS JWTs (the auth callout's request, response and user claims), pure but for signing.

No maintained Python library builds them (Go's ``nats-io/jwt`` is the reference; PyPI's
``nats-jwt`` 0.2.2 is a one-author release from 2025-02): a JWT here is the header
``{"typ": "JWT", "alg": "ed25519-nkey"}``, the claims with ``iat``, ``iss`` (the signer's
public nkey) and ``jti`` (base32 SHA-256 of the claims without it), and an ed25519
signature of ``header.claims`` by the issuer's nkey, all base64url without padding.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
from typing import Any

import nkeys

__all__ = ["decode_claims", "encode_jwt"]

_HEADER = {"typ": "JWT", "alg": "ed25519-nkey"}


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def encode_jwt(claims: dict[str, Any], issuer: nkeys.KeyPair, *, now: float | None = None) -> str:
    """``claims`` signed by ``issuer`` (``iat``, ``iss`` and ``jti`` added)."""
    body = {**claims, "iat": int(time.time() if now is None else now)}
    body["iss"] = issuer.public_key.decode()
    body["jti"] = ""
    digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).digest()
    body["jti"] = base64.b32encode(digest).decode().rstrip("=")
    signed = f"{_b64(json.dumps(_HEADER).encode())}.{_b64(json.dumps(body).encode())}"
    signature: bytes = issuer.sign(signed.encode())
    return f"{signed}.{_b64(signature)}"


def decode_claims(token: str) -> dict[str, Any]:
    """The claims of a JWT, unverified (the callout's requests come from the servers over
    the callout account, which only the servers and the callout user reach); ValueError if
    it is not a JWT."""
    parts = token.split(".")
    if len(parts) != 3:
        msg = "not a JWT"
        raise ValueError(msg)
    try:
        claims = json.loads(_unb64(parts[1]))
    except (ValueError, UnicodeDecodeError) as exc:
        msg = "not a JWT"
        raise ValueError(msg) from exc
    if not isinstance(claims, dict):
        msg = "not a JWT"
        raise ValueError(msg)  # noqa: TRY004 - bytes that are not a JWT: a value error
    return claims
