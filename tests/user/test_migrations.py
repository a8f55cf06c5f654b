"""The Alembic history builds exactly the schema the storage code declares, on both databases."""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.engine import Connection

from services.kit.database import create_engine
from services.kit.migrations import upgrade
from services.user.storage import MIGRATIONS, metadata


def _differences(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, metadata))


async def test_the_migrations_build_the_declared_schema_and_can_run_twice(
    database_url: str,
) -> None:
    await upgrade(database_url, MIGRATIONS)
    await upgrade(database_url, MIGRATIONS)

    engine = create_engine(database_url)
    try:
        async with engine.connect() as connection:
            differences = await connection.run_sync(_differences)
    finally:
        await engine.dispose()

    assert differences == []
