"""Database engines for the services: SQLite (the embedded default) and PostgreSQL.

Settings take ordinary URLs (`sqlite:///.accord/auth.db`, `postgresql://user@host/db`); the
async driver (aiosqlite, asyncpg) is chosen here so configuration stays driver-free.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import DateTime, MetaData, TypeDecorator, event
from sqlalchemy.engine import URL, Dialect, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlalchemy.ext.asyncio import AsyncSession as AsyncSession

ASYNC_DRIVERS = {"sqlite": "sqlite+aiosqlite", "postgresql": "postgresql+asyncpg"}


def async_url(url: str | URL) -> URL:
    """`url` with the async driver for its database; an unsupported database raises."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend not in ASYNC_DRIVERS:
        raise ValueError(f"unsupported database {backend!r}: use sqlite:/// or postgresql://")
    return parsed.set(drivername=ASYNC_DRIVERS[backend])


def create_engine(url: str | URL, **options: Any) -> AsyncEngine:
    """An async engine; SQLite files get their directory, WAL and a busy timeout, and are
    created readable by their owner only (`create_private_file`)."""
    parsed = async_url(url)
    # A failed statement's error message would otherwise quote its parameters: the outbox
    # body of a reset (its token, an email) in a log line.
    options.setdefault("hide_parameters", True)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:" and not _is_uri(parsed):
            create_private_file(Path(parsed.database))
        options.setdefault("connect_args", {}).setdefault("timeout", 30)
        engine = create_async_engine(parsed, **options)

        @event.listens_for(engine.sync_engine, "connect")
        def _configure(connection: Any, _: Any) -> None:
            cursor = connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=30000")
            # Deleted and overwritten rows (a published outbox row's secrets) are zeroed on
            # disk, not left in free pages.
            cursor.execute("PRAGMA secure_delete=ON")
            cursor.close()

        return engine
    options.setdefault("pool_pre_ping", True)
    return create_async_engine(parsed, **options)


def _is_uri(url: URL) -> bool:
    """Whether SQLite reads the database name as a `file:` URI (no plain path to create)."""
    return str(url.query.get("uri", "")).lower() in ("true", "1") or bool(
        url.database and url.database.startswith("file:")
    )


def create_private_directory(path: Path) -> None:
    """Create `path` and its missing parents, each with mode 0700; an existing directory keeps
    its mode."""
    missing: list[Path] = []
    while not path.exists() and path != path.parent:
        missing.append(path)
        path = path.parent
    for directory in reversed(missing):
        directory.mkdir(mode=0o700, exist_ok=True)


def create_private_file(path: Path) -> None:
    """Create the (empty) file `path` with mode 0600 if it does not exist, its directory with
    mode 0700 if that does not exist.

    A database holds password hashes and tokens: it is created readable by its owner only, the
    mode given at creation so that there is no moment when it is readable by others. SQLite
    creates its `-wal`, `-shm` and journal files with the database file's mode; it treats an
    empty file as an empty database. An existing file keeps the mode it has.
    """
    create_private_directory(path.parent)
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    try:
        os.fchmod(descriptor, 0o600)  # whatever the umask
    finally:
        os.close(descriptor)


def service_metadata() -> MetaData:
    """A service's metadata, with constraint names that are the same on every database, so
    that migrations can refer to them."""
    return MetaData(
        naming_convention={
            "ix": "ix_%(table_name)s_%(column_0_N_name)s",
            "uq": "uq_%(table_name)s_%(column_0_N_name)s",
            "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
            "pk": "pk_%(table_name)s",
        }
    )


def sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


class UtcDateTime(TypeDecorator[datetime]):
    """A timezone-aware instant stored in UTC, read back aware on every database.

    SQLite keeps datetimes as text without an offset; normalising to UTC on the way in and
    attaching it on the way out makes comparisons in SQL and in Python agree everywhere.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are ambiguous; pass an aware one")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
