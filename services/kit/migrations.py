"""Alembic migrations run from Python, on SQLite and PostgreSQL alike.

Each service keeps one Alembic history (`services/<name>/migrations/`). `upgrade` runs it
against a plain database URL on the async driver the kit picks, sharing the connection with
Alembic (its "connection sharing" recipe), so it works from inside a running event loop: at
start-up, in tests, and from the command line.
"""

from __future__ import annotations

import asyncio
import weakref
import zlib
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import text
from sqlalchemy.engine import Connection

from services.kit.database import create_engine

# The key under which `upgrade` hands its connection to a service's `env.py`.
CONNECTION_ATTRIBUTE = "connection"

# Alembic's `op` and `context` are process-wide proxies: two histories migrating at once in
# one process (several services in `accord up`) would run each other's operations. One lock
# per event loop serialises them.
_locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
    weakref.WeakKeyDictionary()
)


def _lock() -> asyncio.Lock:
    loop = asyncio.get_running_loop()
    if loop not in _locks:
        _locks[loop] = asyncio.Lock()
    return _locks[loop]


def alembic_config(script_location: Path) -> Config:
    config = Config()
    config.set_main_option("script_location", str(script_location))
    return config


async def upgrade(database_url: str, script_location: Path, revision: str = "head") -> None:
    """Migrate the database at `database_url` to `revision` with the history in
    `script_location`."""
    config = alembic_config(script_location)
    engine = create_engine(database_url)
    try:
        async with _lock(), engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                # Replicas starting together migrate one after the other, not into each other.
                await connection.execute(
                    text("SELECT pg_advisory_xact_lock(:key)"),
                    {"key": zlib.crc32(f"{script_location.parent.name}/migrations".encode())},
                )
            await connection.run_sync(_upgrade, config, revision)
    finally:
        await engine.dispose()


def _upgrade(connection: Connection, config: Config, revision: str) -> None:
    config.attributes[CONNECTION_ATTRIBUTE] = connection
    command.upgrade(config, revision)
