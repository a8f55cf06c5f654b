"""The notification database: the Alembic history builds exactly the schema the code uses, on
SQLite and PostgreSQL, and running it again changes nothing."""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect
from sqlalchemy.engine import Connection

from services.kit.database import create_engine
from services.notification.storage import SqlNotificationDatabase, metadata


def _differences(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, metadata))


def _tables(connection: Connection) -> set[str]:
    return set(inspect(connection).get_table_names())


async def test_the_migrations_build_the_schema_the_code_uses(database_url: str) -> None:
    database = SqlNotificationDatabase(database_url)
    try:
        await database.migrate()
        await database.migrate()  # a second run is a no-op
        assert await database.ping()
    finally:
        await database.dispose()

    engine = create_engine(database_url)
    try:
        async with engine.connect() as connection:
            tables = await connection.run_sync(_tables)
            differences = await connection.run_sync(_differences)
    finally:
        await engine.dispose()
    assert tables == {"alembic_version", "notifications", "users", "processed_events"}
    assert differences == []


async def test_an_unreachable_database_is_reported_not_raised() -> None:
    database = SqlNotificationDatabase("postgresql://nobody@127.0.0.1:1/none")
    try:
        assert await database.ping() is False
    finally:
        await database.dispose()
