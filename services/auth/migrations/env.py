"""Alembic environment of the auth service's database.

`services.kit.migrations.upgrade` hands over an open connection (`config.attributes`); run
from the `alembic` command line instead, it connects to `sqlalchemy.url` or
`AUTH_DATABASE_URL`.
"""

from __future__ import annotations

import asyncio
import os

from alembic import context
from sqlalchemy.engine import Connection

from services.auth.storage import metadata
from services.kit.database import async_url, create_engine
from services.kit.migrations import CONNECTION_ATTRIBUTE

DEFAULT_URL = "sqlite:///.accord/auth.db"


def _configure_and_run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        # SQLite cannot ALTER most things; batch mode rebuilds the table instead.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def _url() -> str:
    return (
        context.config.get_main_option("sqlalchemy.url")
        or os.environ.get("AUTH_DATABASE_URL")
        or DEFAULT_URL
    )


async def _run_online(url: str) -> None:
    engine = create_engine(url)
    try:
        async with engine.begin() as connection:
            await connection.run_sync(_configure_and_run)
    finally:
        await engine.dispose()


def _run() -> None:
    if context.is_offline_mode():
        context.configure(
            url=async_url(_url()).set(drivername=async_url(_url()).get_backend_name()),
            target_metadata=metadata,
            literal_binds=True,
        )
        with context.begin_transaction():
            context.run_migrations()
        return
    connection = context.config.attributes.get(CONNECTION_ATTRIBUTE)
    if connection is not None:
        _configure_and_run(connection)
    else:
        asyncio.run(_run_online(_url()))


_run()
