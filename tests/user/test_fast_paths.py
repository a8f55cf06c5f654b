"""The shortcuts on the hot read path answer exactly what the slow path would: the profile
readers (against the async engine's read) and the verified-token cache (against the
verifier), and step aside when they cannot answer."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.kit.tokens import (
    AccessTokenClaims,
    InvalidTokenError,
    StaticKeySource,
    TokenVerifier,
)
from services.user import consumers
from services.user.readers import ReadUnavailableError
from services.user.storage import SqlProfileRepository, SqlUserStore
from services.user.verification import CachingTokenVerifier
from tests import factories
from tests.user.conftest import AUDIENCE, ISSUER, Tokens


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[SqlUserStore]:
    store = SqlUserStore(database_url)
    await store.migrate()
    yield store
    await store.dispose()


async def a_full_profile(store: SqlUserStore) -> uuid.UUID:
    user_id = uuid.uuid4()
    handlers = consumers.event_handlers(store, lambda: datetime.now(UTC))
    await handlers["user.created"].apply(factories.user_created(user_id, sequence=4))
    await store.profiles.update(
        user_id,
        {"display_name": "Ada", "first_name": "Ada", "last_name": "L", "phone": "+447700900123"},
        datetime.now(UTC),
    )
    return user_id


class Unavailable:
    async def profile(self, user_id: uuid.UUID) -> dict[str, Any] | None:
        raise ReadUnavailableError("locked")

    async def dispose(self) -> None:
        pass


async def test_the_fast_read_answers_exactly_what_the_engine_reads(store: SqlUserStore) -> None:
    user_id = await a_full_profile(store)
    slow = SqlProfileRepository(store.engine, store.sessions, reader=None)

    fast_profile = await store.profiles.get(user_id)
    slow_profile = await slow.get(user_id)

    assert fast_profile is not None
    assert fast_profile == slow_profile
    assert fast_profile.created_at.tzinfo is not None
    assert await store.profiles.get(uuid.uuid4()) is None


async def test_when_the_fast_read_cannot_answer_the_engine_does(store: SqlUserStore) -> None:
    user_id = await a_full_profile(store)
    stepping_aside = SqlProfileRepository(store.engine, store.sessions, reader=Unavailable())

    profile = await stepping_aside.get(user_id)

    assert profile is not None
    assert profile.display_name == "Ada"


class CountingVerifier:
    def __init__(self, tokens: Tokens) -> None:
        self.verifier = tokens.verifier()
        self.calls = 0

    async def verify(self, token: str) -> AccessTokenClaims:
        self.calls += 1
        return await self.verifier.verify(token)


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


async def test_a_verified_token_is_remembered_until_max_age(tokens: Tokens) -> None:
    inner, clock = CountingVerifier(tokens), Clock()
    verifier = CachingTokenVerifier(inner, max_age=timedelta(seconds=60), clock=clock)
    token = tokens.issue(uuid.uuid4())

    first = await verifier.verify(token)
    again = await verifier.verify(token)
    clock.now += timedelta(seconds=61)
    later = await verifier.verify(token)

    assert first == again == later
    assert inner.calls == 2


async def test_a_remembered_token_is_refused_once_it_expires(tokens: Tokens) -> None:
    clock = Clock()
    inner = TokenVerifier(
        StaticKeySource(tokens.jwks), issuer=ISSUER, audience=AUDIENCE, clock=clock
    )
    verifier = CachingTokenVerifier(inner, max_age=timedelta(hours=1), clock=clock)
    token = tokens.issue(uuid.uuid4())  # valid for 15 minutes
    await verifier.verify(token)

    clock.now += timedelta(minutes=16)

    with pytest.raises(InvalidTokenError, match="expired"):
        await verifier.verify(token)


async def test_a_refused_token_is_not_remembered(tokens: Tokens) -> None:
    inner = CountingVerifier(tokens)
    verifier = CachingTokenVerifier(inner)
    token = tokens.expired(uuid.uuid4())

    for _ in range(2):
        with pytest.raises(InvalidTokenError):
            await verifier.verify(token)

    assert inner.calls == 2
