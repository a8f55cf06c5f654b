"""Alembic migrations run from Python, on SQLite and PostgreSQL alike.

Each service keeps one Alembic history (`services/<name>/migrations/`). `upgrade` runs it
against a plain database URL on the async driver the kit picks, sharing the connection with
Alembic (its "connection sharing" recipe), so it works from inside a running event loop: at
start-up, in tests, and from the command line.
"""

from __future__ import annotations

import asyncio
import os
import weakref
import zlib
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import MetaData, text
from sqlalchemy.engine import Connection

from services.kit.database import async_url, create_engine

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


def run_environment(metadata: MetaData, url_variable: str, default_url: str) -> None:
    """The body of every service's Alembic `env.py`.

    `upgrade` hands over an open connection (`config.attributes`); run from the `alembic`
    command line instead, it connects to `sqlalchemy.url`, else `url_variable`, else
    `default_url`. Offline mode (`alembic upgrade --sql`) renders SQL for that URL's database.
    """
    from alembic import context

    def url() -> str:
        return (
            context.config.get_main_option("sqlalchemy.url")
            or os.environ.get(url_variable)
            or default_url
        )

    def configure_and_run(connection: Connection) -> None:
        context.configure(
            connection=connection,
            target_metadata=metadata,
            # SQLite cannot ALTER most things; batch mode rebuilds the table instead.
            render_as_batch=connection.dialect.name == "sqlite",
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()

    async def run_online() -> None:
        engine = create_engine(url())
        try:
            async with engine.begin() as connection:
                await connection.run_sync(configure_and_run)
        finally:
            await engine.dispose()

    if context.is_offline_mode():
        target = async_url(url())
        context.configure(
            url=target.set(drivername=target.get_backend_name()),
            target_metadata=metadata,
            literal_binds=True,
        )
        with context.begin_transaction():
            context.run_migrations()
        return
    connection = context.config.attributes.get(CONNECTION_ATTRIBUTE)
    if connection is not None:
        configure_and_run(connection)
    else:
        asyncio.run(run_online())
