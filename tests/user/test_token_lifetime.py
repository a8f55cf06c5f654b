"""Access tokens whose lifetime is longer than the auth service issues are refused by the user
service as composed by `build_adapters` (keys fetched from a stub auth service over HTTP), up
to USER_ACCESS_TOKEN_MAX_LIFETIME_SECONDS."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.kit.events import encode
from services.kit.memory import InMemoryBroker, InMemoryEventConsumer
from services.kit.tokens import TokenIssuer
from services.kit.topology import QueueSpec
from services.user.app import build_adapters
from services.user.settings import load_settings
from tests import factories
from tests.user.auth_stub import AuthStub
from tests.user.conftest import AUDIENCE, FAST, ISSUER, Tokens, running, user_settings

SERVICE_KEY = "a-service-key-long-enough"
YEAR_9999 = int(datetime(9999, 12, 31, tzinfo=UTC).timestamp())


@pytest.fixture(autouse=True)
def memory_bus(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_ENDPOINT_URL", "LOCALSTACK_ENDPOINT", "ACCORD_ENV"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def auth(tokens: Tokens) -> Iterator[AuthStub]:
    stub = AuthStub(SERVICE_KEY, tokens.jwks).start()
    yield stub
    stub.stop()


@asynccontextmanager
async def user_service(
    auth: AuthStub, tmp_path: Path, queue: str, user_id: uuid.UUID, **overrides: Any
) -> AsyncIterator[httpx.AsyncClient]:
    """The user service from `build_adapters`, with the profile of `user_id` in place."""
    settings = user_settings(
        f"sqlite:///{tmp_path}/user.db",
        auth_service_url=auth.url,
        auth_service_api_key=SERVICE_KEY,
        queue=queue,
        **overrides,
    )
    broker = InMemoryBroker()
    broker.create_queue(QueueSpec(queue))
    adapters = replace(
        build_adapters(settings), consumer=InMemoryEventConsumer(broker, queue, FAST)
    )
    async with running(settings, adapters) as http:
        broker.send(queue, encode(factories.user_created(user_id)))
        deadline = asyncio.get_running_loop().time() + 20
        while broker.depth(queue):
            assert asyncio.get_running_loop().time() < deadline, "user.created was not consumed"
            await asyncio.sleep(0.01)
        yield http


def token(tokens: Tokens, user_id: uuid.UUID, **changes: Any) -> str:
    now = int(datetime.now(UTC).timestamp())
    claims: dict[str, Any] = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": str(user_id),
        "iat": now,
        "nbf": now,
        "exp": now + 900,
        "roles": ["user"],
    }
    return tokens.key.sign(claims | changes)


async def test_a_token_signed_with_the_real_key_until_the_year_9999_is_refused(
    auth: AuthStub, tokens: Tokens, tmp_path: Path, unique_prefix: str
) -> None:
    user_id = uuid.uuid4()
    async with user_service(auth, tmp_path, unique_prefix + "users", user_id) as http:
        absurd = await http.get(
            f"/api/v1/users/{user_id}",
            headers={"Authorization": f"Bearer {token(tokens, user_id, exp=YEAR_9999)}"},
        )
        normal = await http.get(f"/api/v1/users/{user_id}", headers=tokens.headers(user_id))

    assert absurd.status_code == 401
    assert "lifetime too long" in absurd.json()["detail"]
    assert normal.status_code == 200, normal.text


async def test_a_token_within_the_configured_maximum_lifetime_is_accepted(
    auth: AuthStub, tokens: Tokens, tmp_path: Path, unique_prefix: str
) -> None:
    user_id = uuid.uuid4()
    hour_long = TokenIssuer(tokens.key, issuer=ISSUER, audience=AUDIENCE, ttl=timedelta(hours=1))
    headers = {"Authorization": f"Bearer {hour_long.issue(str(user_id), ['user']).token}"}
    queue = unique_prefix + "users"

    async with user_service(auth, tmp_path / "default", queue, user_id) as http:
        by_default = await http.get(f"/api/v1/users/{user_id}", headers=headers)
    async with user_service(
        auth, tmp_path / "raised", queue, user_id, access_token_max_lifetime_seconds=3600
    ) as http:
        when_allowed = await http.get(f"/api/v1/users/{user_id}", headers=headers)

    assert by_default.status_code == 401
    assert when_allowed.status_code == 200, when_allowed.text


def test_the_maximum_lifetime_setting_defaults_to_the_auth_services_ttl(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert load_settings().access_token_max_lifetime_seconds == 900
    monkeypatch.setenv("USER_ACCESS_TOKEN_MAX_LIFETIME_SECONDS", "3600")
    assert load_settings().access_token_max_lifetime_seconds == 3600
