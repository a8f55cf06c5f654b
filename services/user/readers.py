"""Fast paths for the service's hot read, one profile by id (`getUserProfile`).

Through SQLAlchemy's async engine, most of a profile read's cost is not the query: on SQLite it
is handing the query to aiosqlite's thread and back; on PostgreSQL it is the pool's checkout
ping and the async adaptation. These readers run the same statement (`PROFILE_BY_ID`,
compiled by SQLAlchemy for the dialect, its values converted by SQLAlchemy's types) the short
way. When one cannot answer (the database locked, a connection lost), it raises
`ReadUnavailableError` and the repository reads through the engine instead.
"""

from __future__ import annotations

import asyncio
import sqlite3
import uuid
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import asyncpg
from sqlalchemy.dialects import sqlite
from sqlalchemy.engine import Dialect, make_url

from services.user.tables import PROFILE_BY_ID, profiles

Converter = Callable[[Any], Any] | None


class ReadUnavailableError(Exception):
    """The fast path cannot answer now; read the slow way."""


class ProfileReader(Protocol):
    """Reads one profile row by id: the column values by name, or None."""

    async def profile(self, user_id: uuid.UUID) -> dict[str, Any] | None: ...

    async def dispose(self) -> None: ...


class _Statement:
    """`PROFILE_BY_ID` compiled for one dialect, with SQLAlchemy's conversions of its values."""

    def __init__(self, dialect: Dialect) -> None:
        self.sql = str(PROFILE_BY_ID.compile(dialect=dialect))
        self._bind: Converter = profiles.c.id.type.dialect_impl(dialect).bind_processor(dialect)
        self._columns: list[tuple[str, Converter]] = [
            (column.name, column.type.dialect_impl(dialect).result_processor(dialect, None))
            for column in profiles.c
        ]

    def key(self, user_id: uuid.UUID) -> Any:
        return user_id if self._bind is None else self._bind(user_id)

    def values(self, row: Sequence[Any]) -> dict[str, Any]:
        return {
            name: value if convert is None else convert(value)
            for (name, convert), value in zip(self._columns, row, strict=True)
        }


class SqliteProfileReader:
    """Reads from a SQLite file synchronously, on the event loop: a primary-key read in WAL
    mode takes microseconds and never waits for a writer (if it would, it fails at once)."""

    def __init__(self, path: str) -> None:
        self._path = path
        self._statement = _Statement(sqlite.dialect())
        self._connection: sqlite3.Connection | None = None

    async def profile(self, user_id: uuid.UUID) -> dict[str, Any] | None:
        try:
            if self._connection is None:
                # Autocommit: every read sees what is committed now. Used from the event
                # loop's thread only, one read at a time.
                self._connection = sqlite3.connect(
                    self._path, timeout=0, isolation_level=None, check_same_thread=False
                )
            cursor = self._connection.execute(self._statement.sql, (self._statement.key(user_id),))
            row = cursor.fetchone()
        except sqlite3.OperationalError as error:
            raise ReadUnavailableError(str(error)) from None
        return None if row is None else self._statement.values(row)

    async def dispose(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None


async def _keep_session_state(connection: asyncpg.Connection) -> None:
    """No reset between uses: these connections only ever run one read-only statement."""


class PostgresProfileReader:
    """Reads through a small asyncpg pool of its own, opened on first use."""

    def __init__(self, database_url: str, max_connections: int = 10) -> None:
        self._dsn = (
            make_url(database_url)
            .set(drivername="postgresql")
            .render_as_string(hide_password=False)
        )
        self._max_connections = max_connections
        self._statement = _Statement(make_url("postgresql+asyncpg://").get_dialect()())
        self._pool: asyncpg.Pool | None = None
        self._opening = asyncio.Lock()

    async def _opened(self) -> asyncpg.Pool:
        async with self._opening:  # the first requests arrive together: one pool for all
            if self._pool is None:
                self._pool = await asyncpg.create_pool(
                    self._dsn,
                    min_size=1,
                    max_size=self._max_connections,
                    reset=_keep_session_state,
                )
            return self._pool

    async def profile(self, user_id: uuid.UUID) -> dict[str, Any] | None:
        try:
            pool = self._pool or await self._opened()
            row = await pool.fetchrow(self._statement.sql, self._statement.key(user_id))
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
            raise ReadUnavailableError(f"{type(error).__name__}: {error}") from None
        return None if row is None else self._statement.values(tuple(row.values()))

    async def dispose(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None


def profile_reader(database_url: str) -> ProfileReader | None:
    """The fast reader for a database URL; None where there is none (SQLite in memory)."""
    url = make_url(database_url)
    backend = url.get_backend_name()
    if backend == "sqlite":
        return (
            SqliteProfileReader(url.database)
            if url.database not in (None, "", ":memory:")
            else None
        )
    if backend == "postgresql":
        return PostgresProfileReader(database_url)
    return None
