"""Retention in the kit and in the consuming services: processed-event records go after their
retention (never sooner than any redelivery), the periodic pass survives its failures, and local
databases are readable by their owner only."""

from __future__ import annotations

import asyncio
import logging
import os
import stat
import uuid
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError
from sqlalchemy import MetaData, Table, insert, select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from harness.stack.up import private_state_directory
from services.kit.database import create_engine, sessionmaker
from services.kit.idempotency import processed_events_table
from services.kit.retention import (
    RetentionTask,
    RetentionTooShortError,
    check_processed_event_retention,
    processed_events,
    prune,
)
from services.notification.settings import Settings as NotificationSettings
from services.notification.storage import SqlNotificationDatabase
from services.notification.storage import processed_events as notification_processed_events
from services.user.settings import Settings as UserSettings
from services.user.storage import SqlUserStore
from services.user.storage import processed_events as user_processed_events

NOW = datetime(2030, 6, 1, 12, tzinfo=UTC)
DAY = timedelta(days=1)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'retention.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def eventually(check: Callable[[], bool], seconds: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached")
        await asyncio.sleep(0.01)


# --- processed events -----------------------------------------------------------------------


Sessions = async_sessionmaker[AsyncSession]


async def record(
    sessions: Sessions, table: Table, consumer: str, ages: Mapping[str, int]
) -> dict[str, uuid.UUID]:
    """A processed-event record per name, processed that many days before NOW."""
    ids = {name: uuid.uuid4() for name in ages}
    async with sessions() as session, session.begin():
        for name, days in ages.items():
            await session.execute(
                insert(table).values(
                    consumer=consumer,
                    event_id=ids[name],
                    event_type="user.created",
                    processed_at=NOW - days * DAY,
                )
            )
    return ids


async def remaining(sessions: Sessions, table: Table) -> set[uuid.UUID]:
    async with sessions() as session:
        return set((await session.execute(select(table.c.event_id))).scalars())


AGES = {"31 days ago": 31, "29 days ago": 29, "16 days ago": 16, "today": 0}


async def test_processed_events_older_than_the_retention_are_pruned_and_newer_ones_stay(
    database_url: str,
) -> None:
    metadata = MetaData()
    table = processed_events_table(metadata)
    engine = create_engine(database_url)
    async with engine.begin() as connection:
        await connection.run_sync(metadata.create_all)
    sessions = sessionmaker(engine)
    try:
        ids = await record(sessions, table, "user-service", AGES)

        deleted = await prune(sessions, [processed_events(table, 30 * DAY)], now=NOW)
        survivors = await remaining(sessions, table)
    finally:
        await engine.dispose()

    assert deleted == {"processed_events": 1}
    assert survivors == {ids["29 days ago"], ids["16 days ago"], ids["today"]}


async def test_the_user_service_prunes_its_processed_events_after_its_retention(
    database_url: str,
) -> None:
    store = SqlUserStore(database_url)
    try:
        await store.migrate()
        ids = await record(store.sessions, user_processed_events, "user-service", AGES)

        deleted = await store.prune(30 * DAY, NOW)
        survivors = await remaining(store.sessions, user_processed_events)
    finally:
        await store.dispose()

    assert deleted == {"processed_events": 1}
    assert survivors == {ids["29 days ago"], ids["16 days ago"], ids["today"]}


async def test_the_notification_service_prunes_its_processed_events_after_its_retention(
    database_url: str,
) -> None:
    database = SqlNotificationDatabase(database_url)
    try:
        await database.migrate()
        ids = await record(
            database.sessions, notification_processed_events, "notification-service", AGES
        )

        deleted = await database.prune(15 * DAY, NOW)
        survivors = await remaining(database.sessions, notification_processed_events)
    finally:
        await database.dispose()

    assert deleted == {"processed_events": 3}
    assert survivors == {ids["today"]}


async def test_a_retention_shorter_than_any_redelivery_deletes_nothing(
    database_url: str,
) -> None:
    store = SqlUserStore(database_url)
    try:
        await store.migrate()
        ids = await record(store.sessions, user_processed_events, "user-service", AGES)

        with pytest.raises(RetentionTooShortError, match="at least 15 days"):
            await store.prune(14 * DAY, NOW)
        survivors = await remaining(store.sessions, user_processed_events)
    finally:
        await store.dispose()

    assert survivors == set(ids.values())


@pytest.mark.parametrize(
    ("settings_class", "variable"),
    [(UserSettings, "USER_"), (NotificationSettings, "NOTIFICATION_")],
)
def test_processed_event_retention_must_outlast_sqs_message_retention(
    settings_class: type[UserSettings] | type[NotificationSettings],
    variable: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(f"{variable}PROCESSED_EVENT_RETENTION_DAYS", "14")
    with pytest.raises(ValidationError, match="at least 15 days: SQS can deliver a message"):
        settings_class()

    monkeypatch.setenv(f"{variable}PROCESSED_EVENT_RETENTION_DAYS", "15")
    assert settings_class().processed_event_retention_days == 15

    monkeypatch.delenv(f"{variable}PROCESSED_EVENT_RETENTION_DAYS")
    assert settings_class().processed_event_retention_days == 30


def test_the_processed_event_minimum_is_one_day_past_sqs_s_14_day_maximum() -> None:
    assert check_processed_event_retention(15) == 15
    with pytest.raises(ValueError, match="14 days"):
        check_processed_event_retention(14)


# --- the periodic pass ----------------------------------------------------------------------


async def test_a_failing_retention_pass_is_logged_and_the_next_pass_runs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    outcomes: list[Callable[[], Awaitable[dict[str, int]]]] = []

    async def failing() -> dict[str, int]:
        raise ConnectionError("the database is down")

    async def working() -> dict[str, int]:
        return {"outbox": 3}

    outcomes.extend([failing, working])
    results: list[Mapping[str, int]] = []

    async def next_pass() -> dict[str, int]:
        outcome = outcomes.pop(0) if outcomes else working
        result = await outcome()
        results.append(result)
        return result

    task = RetentionTask(next_pass, interval=0.01, name="test-retention")
    with caplog.at_level(logging.INFO, logger="accord.retention"):
        await task.start()
        try:
            await eventually(lambda: len(results) >= 2)
        finally:
            await task.stop()

    assert task.failures == 1
    assert not task.running
    assert "test-retention could not prune" in caplog.text
    assert "the database is down" in caplog.text
    assert "test-retention deleted 3 from outbox" in caplog.text


# --- file modes -----------------------------------------------------------------------------


async def test_a_new_sqlite_database_and_its_accord_directory_are_private_to_their_owner(
    tmp_path: Path,
) -> None:
    state = tmp_path / "project" / ".accord"
    database = state / "auth.db"
    previous = os.umask(0o022)
    try:
        engine = create_engine(f"sqlite:///{database}")
        try:
            async with engine.begin() as connection:
                await connection.execute(text("CREATE TABLE t (x INTEGER)"))
                await connection.execute(text("INSERT INTO t VALUES (1)"))
            # SQLite gives its write-ahead log the database file's mode.
            wal_mode = mode(Path(f"{database}-wal"))
        finally:
            await engine.dispose()
    finally:
        os.umask(previous)

    assert mode(state) == 0o700
    assert mode(state.parent) == 0o700  # created on the way, private as well
    assert mode(database) == 0o600
    assert wal_mode == 0o600


async def test_an_existing_sqlite_database_keeps_its_mode_and_its_data(tmp_path: Path) -> None:
    database = tmp_path / "kept.db"
    url = f"sqlite:///{database}"
    engine = create_engine(url)
    async with engine.begin() as connection:
        await connection.execute(text("CREATE TABLE t (x INTEGER)"))
        await connection.execute(text("INSERT INTO t VALUES (42)"))
    await engine.dispose()
    database.chmod(0o640)

    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
            value = (await connection.execute(text("SELECT x FROM t"))).scalar_one()
    finally:
        await engine.dispose()

    assert value == 42
    assert mode(database) == 0o640


def test_accord_up_makes_its_state_directory_private_and_tightens_an_old_one(
    tmp_path: Path,
) -> None:
    new, old = tmp_path / "new" / ".accord", tmp_path / "old" / ".accord"
    old.mkdir(parents=True, mode=0o755)
    old.chmod(0o755)

    private_state_directory(new)
    private_state_directory(old)

    assert mode(new) == 0o700
    assert mode(old) == 0o700
