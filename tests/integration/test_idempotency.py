"""The idempotency record and the handler's effect commit atomically, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, func, insert, select
from sqlalchemy.ext.asyncio import async_sessionmaker

from services.kit.database import AsyncSession, create_engine, sessionmaker
from services.kit.events import Event
from services.kit.idempotency import IdempotentHandler, processed_events_table
from tests import factories

Store = tuple[async_sessionmaker[AsyncSession], Table, Table]


class SimulatedCrashError(Exception):
    """Stands for the process dying between the effect and the commit."""


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'consumer.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[Store]:
    metadata = MetaData()
    effects = Table(
        "profiles",
        metadata,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("user_id", String(36), nullable=False),
    )
    processed = processed_events_table(metadata)
    engine = create_engine(database_url)
    async with engine.begin() as connection:
        await connection.run_sync(metadata.create_all)
    yield sessionmaker(engine), effects, processed
    await engine.dispose()


async def counts(sessions: async_sessionmaker[AsyncSession], *tables: Table) -> list[int]:
    async with sessions() as session:
        return [
            (await session.execute(select(func.count()).select_from(t))).scalar_one()
            for t in tables
        ]


async def test_a_crash_between_effect_and_commit_leaves_neither(
    store: Store,
) -> None:
    sessions, effects, processed = store
    crash = True

    async def create_profile(event: Event, session: AsyncSession) -> None:
        await session.execute(insert(effects).values(user_id=str(event.userId)))
        await session.flush()
        if crash:
            raise SimulatedCrashError

    handler = IdempotentHandler("user-service", sessions, processed, create_profile)
    event = factories.user_created()

    with pytest.raises(SimulatedCrashError):
        await handler.apply(event)
    assert await counts(sessions, effects, processed) == [0, 0]

    crash = False  # the redelivery after the crash
    assert await handler.apply(event) is True
    assert await counts(sessions, effects, processed) == [1, 1]


async def test_a_duplicate_is_absorbed_with_no_second_effect(
    store: Store,
) -> None:
    sessions, effects, processed = store

    async def create_profile(event: Event, session: AsyncSession) -> None:
        await session.execute(insert(effects).values(user_id=str(event.userId)))

    handler = IdempotentHandler("user-service", sessions, processed, create_profile)
    event = factories.user_created()

    outcomes = [await handler.apply(event) for _ in range(3)]

    assert outcomes == [True, False, False]
    assert await counts(sessions, effects, processed) == [1, 1]


async def test_concurrent_duplicates_apply_the_effect_once(
    store: Store,
) -> None:
    sessions, effects, processed = store

    async def create_profile(event: Event, session: AsyncSession) -> None:
        await session.execute(insert(effects).values(user_id=str(event.userId)))
        await asyncio.sleep(0.01)  # widen the window in which a duplicate could slip in

    handler = IdempotentHandler("user-service", sessions, processed, create_profile)
    event = factories.user_created()

    outcomes = await asyncio.gather(*(handler.apply(event) for _ in range(5)))

    assert sorted(outcomes) == [False, False, False, False, True]
    assert await counts(sessions, effects, processed) == [1, 1]


async def test_two_consumers_each_apply_the_same_event_once(
    store: Store,
) -> None:
    sessions, effects, processed = store

    async def create_profile(event: Event, session: AsyncSession) -> None:
        await session.execute(insert(effects).values(user_id=str(event.userId)))

    event = factories.user_created()
    for consumer in ("user-service", "audit"):
        handler = IdempotentHandler(consumer, sessions, processed, create_profile)
        assert await handler.apply(event) is True
        assert await handler.apply(event) is False

    assert await counts(sessions, effects, processed) == [2, 2]


async def test_a_constraint_violated_by_the_effect_itself_is_a_failure_not_a_duplicate(
    store: Store,
) -> None:
    sessions, effects, processed = store

    async def broken(event: Event, session: AsyncSession) -> None:
        await session.execute(insert(effects).values(id=1, user_id="a"))
        await session.execute(insert(effects).values(id=1, user_id="b"))

    handler = IdempotentHandler("user-service", sessions, processed, broken)

    with pytest.raises(Exception, match=r"(?i)unique|duplicate"):
        await handler.apply(factories.user_created())
    assert await counts(sessions, effects, processed) == [0, 0]
