"""The notification service's token verifier, as `open_adapters` composes it (keys fetched from
a stub auth service over HTTP), refuses tokens that claim a longer lifetime than the auth
service issues, up to NOTIFICATION_ACCESS_TOKEN_MAX_LIFETIME_SECONDS."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from services.kit.aws import BusLocation
from services.kit.tokens import InvalidTokenError, SigningKey, TokenIssuer, jwks
from services.notification.app import open_adapters
from services.notification.settings import Settings
from tests.user.auth_stub import AuthStub

ISSUER = "http://127.0.0.1:3001"
AUDIENCE = "accord"
YEAR_9999 = int(datetime(9999, 12, 31, tzinfo=UTC).timestamp())


@pytest.fixture
def key() -> SigningKey:
    return SigningKey.generate()


@pytest.fixture
def auth(key: SigningKey) -> Iterator[AuthStub]:
    stub = AuthStub("unused", jwks(key)).start()
    yield stub
    stub.stop()


def settings(auth: AuthStub, tmp_path: Path, **overrides: Any) -> Settings:
    return Settings(
        environment="local",
        database_url=f"sqlite:///{tmp_path / 'notification.db'}",
        jwks_url=f"{auth.url}/.well-known/jwks.json",
        consume=False,
        **overrides,
    )


async def test_a_token_signed_with_the_real_key_until_the_year_9999_is_refused(
    auth: AuthStub, key: SigningKey, tmp_path: Path
) -> None:
    now = int(datetime.now(UTC).timestamp())
    claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": "u-1", "iat": now, "roles": ["user"]}
    normal = TokenIssuer(key, issuer=ISSUER, audience=AUDIENCE, ttl=timedelta(minutes=15))

    async with open_adapters(settings(auth, tmp_path), BusLocation("memory")) as adapters:
        with pytest.raises(InvalidTokenError, match="lifetime too long"):
            await adapters.tokens.verify(key.sign(claims | {"exp": YEAR_9999}))
        accepted = await adapters.tokens.verify(normal.issue("u-1", ["user"]).token)

    assert accepted.subject == "u-1"


async def test_a_token_within_the_configured_maximum_lifetime_is_accepted(
    auth: AuthStub, key: SigningKey, tmp_path: Path
) -> None:
    hour_long = TokenIssuer(key, issuer=ISSUER, audience=AUDIENCE, ttl=timedelta(hours=1))
    token = hour_long.issue("u-1", ["user"]).token
    raised = settings(auth, tmp_path, access_token_max_lifetime_seconds=3600)

    async with open_adapters(settings(auth, tmp_path), BusLocation("memory")) as adapters:
        with pytest.raises(InvalidTokenError, match="lifetime too long"):
            await adapters.tokens.verify(token)
    async with open_adapters(raised, BusLocation("memory")) as adapters:
        assert (await adapters.tokens.verify(token)).subject == "u-1"
