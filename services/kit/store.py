"""A service's database as one object: its engine and sessions, the Alembic history that
creates its schema, and its health. Each service's store (`SqlAuthStore`, `SqlUserStore`,
`SqlNotificationDatabase`) adds its repositories and units of work to it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from services.kit import migrations
from services.kit.database import create_engine, sessionmaker


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
