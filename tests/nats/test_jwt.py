"""The callout's JWTs and permissions (pure)."""

from __future__ import annotations

import base64
import os

import nkeys
import pytest

from hub.auth import Acl, Identity, Role
from hub.nats.callout import user_claims
from hub.nats.jwt import decode_claims, encode_jwt
from hub.nats.subjects import nats_subject
from hub.protocol import Topics


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def test_a_jwt_is_signed_by_the_issuer_and_carries_its_claims() -> None:
    issuer = nkeys.from_seed(
        bytearray(nkeys.encode_seed(os.urandom(32), nkeys.PREFIX_BYTE_ACCOUNT))
    )
    token = encode_jwt({"sub": "UABC", "nats": {"type": "user"}}, issuer, now=1000)
    head, body, signature = token.split(".")
    assert issuer.verify(f"{head}.{body}".encode(), _unb64(signature))
    claims = decode_claims(token)
    assert claims["iss"] == issuer.public_key.decode()
    assert claims["iat"] == 1000
    assert claims["sub"] == "UABC"
    assert len(claims["jti"]) == 52  # base32 of SHA-256, unpadded
    tampered = f"{head}.{body[:-2]}AA.{signature}"
    with pytest.raises(nkeys.ErrInvalidSignature):
        issuer.verify(tampered.rsplit(".", 1)[0].encode(), _unb64(signature))


@pytest.mark.parametrize("junk", ["", "a.b", "x.!!!.y", "a.WzFd.b"])
def test_junk_is_not_a_jwt(junk: str) -> None:
    with pytest.raises(ValueError, match="not a JWT"):
        decode_claims(junk)


@pytest.mark.parametrize(
    ("topic", "subject"),
    [
        ("tablehub/games/+/cmd/p-1", "tablehub.games.*.cmd.p-1"),
        ("tablehub/#", "tablehub.>"),
        ("a.b/c", "a//b.c"),
    ],
)
def test_topics_become_subjects(topic: str, subject: str) -> None:
    assert nats_subject(topic) == subject


def test_permissions_come_from_the_acl() -> None:
    acl = Acl(Topics())
    player = user_claims(
        acl, Identity("p-1", Role.PLAYER), user_nkey="UX", account="TABLEHUB", expires=99
    )
    assert player["exp"] == 99
    assert player["aud"] == "TABLEHUB"
    assert player["nats"]["pub"]["allow"] == [
        "tablehub.games.*.cmd.p-1",
        "tablehub.clients.p-1.presence",
    ]
    reads = player["nats"]["sub"]["allow"]
    assert "tablehub.clients.p-1.reply" in reads
    assert "tablehub.games.*.join" not in reads
    display = user_claims(
        acl, Identity("pi", Role.DISPLAY), user_nkey="UX", account="TABLEHUB", expires=None
    )
    assert "exp" not in display
    assert "tablehub.games.*.join" in display["nats"]["sub"]["allow"]
    operator = user_claims(
        acl, Identity("op", Role.OPERATOR), user_nkey="UX", account="TABLEHUB", expires=None
    )
    assert operator["nats"]["sub"]["allow"] == [">"]
    assert operator["nats"]["pub"]["allow"] == [
        "tablehub.games.*.cmd.op",
        "tablehub.clients.op.presence",
    ]
