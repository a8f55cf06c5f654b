"""Alembic migrations run from Python, on SQLite and PostgreSQL alike.

Each service keeps one Alembic history (`services/<name>/migrations/`). `upgrade` runs it
against a plain database URL on the async driver the kit picks, sharing the connection with
Alembic (its "connection sharing" recipe), so it works from inside a running event loop: at
start-up, in tests, and from the command line (`accord migrate SERVICE`).

`schema_state` says where a database stands against the history without changing it: what a
service started outside local mode checks instead of migrating (`SqlStore.prepare`).
"""

from __future__ import annotations

import asyncio
import os
import weakref
import zlib
from dataclasses import dataclass
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError
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


@dataclass(frozen=True)
class SchemaState:
    """Where a database stands against a service's Alembic history."""

    current: tuple[str, ...]  # the revisions its `alembic_version` holds; none: never migrated
    heads: tuple[str, ...]  # the newest revisions of the history
    unknown: tuple[str, ...]  # revisions it holds that the history does not have

    @property
    def migrated(self) -> bool:
        """Whether it is at the newest revision."""
        return set(self.current) == set(self.heads)

    @property
    def newer(self) -> bool:
        """Whether a newer version of the service migrated it (revisions this history lacks):
        during a rolling deploy, the replicas of the version before still run on it."""
        return bool(self.unknown)

    def describe(self) -> str:
        """Where it stands, after "is": `at revision r0002, behind this version's r0003`."""
        heads = ", ".join(self.heads)
        if not self.current:
            return f"not migrated (no revision; this version needs {heads})"
        current = ", ".join(self.current)
        if self.newer:
            return f"at revision {current}, newer than this version's {heads}"
        if self.migrated:
            return f"at revision {current}, the newest"
        return f"at revision {current}, behind this version's {heads}"


async def schema_state(database_url: str, script_location: Path) -> SchemaState:
    """Where the database at `database_url` stands against the history in `script_location`
    (read only: it changes nothing)."""
    script = ScriptDirectory.from_config(alembic_config(script_location))
    engine = create_engine(database_url)
    try:
        async with engine.connect() as connection:
            current = await connection.run_sync(
                lambda sync: MigrationContext.configure(sync).get_current_heads()
            )
    finally:
        await engine.dispose()
    return SchemaState(
        current=tuple(current),
        heads=tuple(script.get_heads()),
        unknown=tuple(revision for revision in current if not _known(script, revision)),
    )


def _known(script: ScriptDirectory, revision: str) -> bool:
    try:
        return script.get_revision(revision) is not None
    except CommandError:  # "Can't locate revision identified by ..."
        return False


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
