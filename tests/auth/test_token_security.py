"""Access tokens that must be refused, presented to `GET /me`: each one is a 401 problem."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization

from services.kit.tokens import SigningKey, TokenIssuer
from tests.auth.conftest import AuthClient

ME = "/api/v1/auth/me"
YEAR_9999 = int(datetime(9999, 12, 31, tzinfo=UTC).timestamp())


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def segment(document: dict[str, Any]) -> str:
    return b64(json.dumps(document, separators=(",", ":")).encode("utf-8"))


def decode_segment(text: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
    return document


Forge = Callable[[AuthClient, dict[str, Any]], str]


def _issuer(auth: AuthClient, key: SigningKey | None = None, **changes: Any) -> TokenIssuer:
    options: dict[str, Any] = {
        "issuer": auth.settings.issuer,
        "audience": auth.settings.audience,
        "ttl": timedelta(minutes=5),
    } | changes
    return TokenIssuer(key or auth.adapters.signing_key, **options)


def alg_none(auth: AuthClient, user: dict[str, Any]) -> str:
    header, payload, _ = user["accessToken"].split(".")
    forged_header = decode_segment(header) | {"alg": "none"}
    return f"{segment(forged_header)}.{payload}."


def hs256_with_the_public_key(auth: AuthClient, user: dict[str, Any]) -> str:
    # The classic algorithm confusion: a verifier that lets the token pick the algorithm
    # would check an HMAC keyed with the (public) verification key.
    header, payload, _ = user["accessToken"].split(".")
    forged_header = decode_segment(header) | {"alg": "HS256"}
    public = auth.adapters.signing_key.public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    signing_input = f"{segment(forged_header)}.{payload}".encode("ascii")
    signature = hmac.new(public, signing_input, hashlib.sha256).digest()
    return f"{signing_input.decode('ascii')}.{b64(signature)}"


def expired(auth: AuthClient, user: dict[str, Any]) -> str:
    past = auth.adapters.clock() - timedelta(hours=1)
    return _issuer(auth, clock=lambda: past).issue(user["userId"], ["user"]).token


def wrong_audience(auth: AuthClient, user: dict[str, Any]) -> str:
    return _issuer(auth, audience="someone-else").issue(user["userId"], ["user"]).token


def wrong_issuer(auth: AuthClient, user: dict[str, Any]) -> str:
    return _issuer(auth, issuer="https://evil.example").issue(user["userId"], ["user"]).token


def unknown_kid(auth: AuthClient, user: dict[str, Any]) -> str:
    return _issuer(auth, SigningKey.generate()).issue(user["userId"], ["user"]).token


def tampered_payload(auth: AuthClient, user: dict[str, Any]) -> str:
    header, payload, signature = user["accessToken"].split(".")
    forged = decode_segment(payload) | {"roles": ["user", "admin"]}
    return f"{header}.{segment(forged)}.{signature}"


def garbage(auth: AuthClient, user: dict[str, Any]) -> str:
    return "not.a.jwt"


def lives_until_the_year_9999(auth: AuthClient, user: dict[str, Any]) -> str:
    # Signed with the service's own key: only the lifetime is wrong.
    return auth.adapters.signing_key.sign(_claims(auth, user, exp=YEAR_9999))


def _claims(auth: AuthClient, user: dict[str, Any], **changes: Any) -> dict[str, Any]:
    now = int(auth.adapters.clock().timestamp())
    claims: dict[str, Any] = {
        "iss": auth.settings.issuer,
        "aud": auth.settings.audience,
        "sub": user["userId"],
        "iat": now,
        "nbf": now,
        "exp": now + auth.settings.access_token_ttl_seconds,
        "jti": "a-token-id",
        "roles": ["user"],
    }
    return claims | changes


@pytest.mark.parametrize(
    "forge",
    [
        alg_none,
        hs256_with_the_public_key,
        expired,
        wrong_audience,
        wrong_issuer,
        unknown_kid,
        tampered_payload,
        garbage,
        lives_until_the_year_9999,
    ],
)
async def test_a_forged_or_stale_access_token_is_refused_with_401(
    auth: AuthClient, forge: Forge
) -> None:
    user = await auth.register()
    assert (
        await auth.http.get(ME, headers={"Authorization": f"Bearer {user['accessToken']}"})
    ).status_code == 200

    response = await auth.http.get(ME, headers={"Authorization": f"Bearer {forge(auth, user)}"})

    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"] == "https://accord.example/problems/unauthenticated"
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="accord", error="invalid_token"'


@pytest.mark.parametrize(
    "authorization", ["", "Bearer", "Bearer ", "Basic dXNlcjpwYXNz", "bearer"], ids=repr
)
async def test_a_missing_or_malformed_authorization_header_is_refused_with_401(
    auth: AuthClient, authorization: str
) -> None:
    response = await auth.http.get(ME, headers={"Authorization": authorization})

    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith('Bearer realm="accord"')


async def test_a_token_claiming_a_lifetime_longer_than_the_services_ttl_is_refused_naming_why(
    auth: AuthClient,
) -> None:
    user = await auth.register()
    token = lives_until_the_year_9999(auth, user)

    response = await auth.http.get(ME, headers={"Authorization": f"Bearer {token}"})

    assert response.status_code == 401
    assert "lifetime too long" in response.json()["detail"]


async def test_a_token_living_as_long_as_the_services_ttl_and_the_leeway_is_accepted(
    auth: AuthClient,
) -> None:
    user = await auth.register()
    now = int(auth.adapters.clock().timestamp())
    longest = now + auth.settings.access_token_ttl_seconds + 30  # the verification leeway
    token = auth.adapters.signing_key.sign(_claims(auth, user, exp=longest))

    response = await auth.http.get(ME, headers={"Authorization": f"Bearer {token}"})

    assert response.status_code == 200
    assert response.json()["id"] == user["userId"]
