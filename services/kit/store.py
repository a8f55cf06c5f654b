"""A service's database as one object: its engine and sessions, the Alembic history that
creates its schema, and its health. Each service's store (`SqlAuthStore`, `SqlUserStore`,
`SqlNotificationDatabase`) adds its repositories and units of work to it.

At start-up a service `prepare`s its store: it migrates it when `*_MIGRATE_ON_START` says so
(by default in local mode only); outside local mode it otherwise only checks that the schema
is the one this version needs, and refuses to start, naming `accord migrate SERVICE`, when it
is not. Migrating is then a deploy step of its own, run once before the new replicas start.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from services.kit import migrations
from services.kit.database import create_engine, sessionmaker
from services.kit.settings import ServiceSettings
from services.kit.startup import DatabaseSetting


class SchemaNotMigratedError(Exception):
    """A service outside local mode found its database behind its schema; the message (one
    line) names the database's setting and the command that migrates it."""


class SqlStore:
    """A database: its engine, its sessions, its migrations, its health."""

    def __init__(self, database_url: str, migrations_dir: Path, **engine_options: Any) -> None:
        self.database_url = database_url
        self.migrations_dir = migrations_dir
        self.engine: AsyncEngine = create_engine(database_url, **engine_options)
        self.sessions = sessionmaker(self.engine)

    async def migrate(self) -> None:
        """Bring the schema up to the newest revision of the service's Alembic history."""
        await migrations.upgrade(self.database_url, self.migrations_dir)

    async def prepare(self, settings: ServiceSettings, log: logging.Logger) -> None:
        """At start-up: migrate when the settings say so (`migrates_on_start`); otherwise,
        outside local mode, `SchemaNotMigratedError` unless the schema is the newest (a newer
        one, from a newer version's `accord migrate` during a rolling deploy, is allowed)."""
        service = settings.service()
        if settings.migrates_on_start:
            if not settings.local:  # chosen explicitly: say so, it is not the default there
                log.warning(
                    "%sMIGRATE_ON_START=true: migrating the %s database at start-up; "
                    "the default outside local mode is `accord migrate %s` as a deploy step",
                    settings.prefix(),
                    service,
                    service,
                )
            await self.migrate()
            return
        if settings.local:
            return
        state = await migrations.schema_state(self.database_url, self.migrations_dir)
        database = DatabaseSetting.of(settings)
        if state.newer:
            log.warning(
                "%s: %s is %s; starting (a newer version migrated it)",
                database.name,
                database.describe(),
                state.describe(),
            )
        elif not state.migrated:
            raise SchemaNotMigratedError(
                f"{database.name}: {database.describe()} is {state.describe()}; run "
                f"`accord migrate {service}` before starting the service (it does not migrate "
                f"on start outside local mode)"
            )

    async def ping(self) -> bool:
        """Whether the database answers a query now (the readiness probe's check)."""
        try:
            async with self.engine.connect() as connection:
                await connection.execute(text("SELECT 1"))
        except Exception:
            return False
        return True

    async def dispose(self) -> None:
        """Close the engine's connections, at shutdown."""
        await self.engine.dispose()
