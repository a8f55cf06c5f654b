"""The user service's storage on SQLAlchemy Core: profiles, addresses and the processed-event
log (`tables`), on SQLite or PostgreSQL, with a fast path for the profile read (`readers`).

Every write transaction starts with a write, so that it holds the profile's row lock on
PostgreSQL and the write lock on SQLite before it decides anything: a deactivation and an
address being added, or two events about one user, are ordered instead of interleaved.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Row, delete, insert, select, tuple_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from services.kit import retention
from services.kit.store import SqlStore
from services.user.domain import (
    ADDRESS_FIELDS,
    PROFILE_FIELDS,
    Address,
    PagePosition,
    Profile,
    ProfileStatus,
)
from services.user.readers import ProfileReader, ReadUnavailableError, profile_reader
from services.user.tables import PROFILE_BY_ID, addresses, metadata, processed_events, profiles

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
log = logging.getLogger("accord.user.storage")

__all__ = ["MIGRATIONS", "SqlUserStore", "addresses", "metadata", "processed_events", "profiles"]


def _profile(row: Mapping[Any, Any]) -> Profile:
    return Profile(
        id=row["id"],
        email=row["email"],
        display_name=row["display_name"],
        first_name=row["first_name"],
        last_name=row["last_name"],
        phone=row["phone"],
        status=ProfileStatus(row["status"]),
        last_sequence=int(row["last_sequence"]),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def _address(row: Row[Any]) -> Address:
    return Address(
        id=row.id,
        user_id=row.user_id,
        label=row.label,
        line1=row.line1,
        line2=row.line2,
        city=row.city,
        region=row.region,
        postal_code=row.postal_code,
        country=row.country,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _profile_values(profile: Profile) -> dict[str, Any]:
    return {
        "email": profile.email,
        "display_name": profile.display_name,
        "first_name": profile.first_name,
        "last_name": profile.last_name,
        "phone": profile.phone,
        "status": profile.status.value,
        "last_sequence": profile.last_sequence,
        "created_at": profile.created_at,
        "updated_at": profile.updated_at,
    }


_PROFILE_COLUMNS = frozenset(PROFILE_FIELDS)
_ADDRESS_COLUMNS = frozenset(ADDRESS_FIELDS)


def _checked(changes: Mapping[str, str | None], allowed: frozenset[str]) -> dict[str, Any]:
    unknown = set(changes) - allowed
    if unknown:
        raise ValueError(f"not changeable: {', '.join(sorted(unknown))}")
    return dict(changes)


class SqlProfileRepository:
    """`ProfileRepository` on the `profiles` and `addresses` tables."""

    def __init__(
        self,
        engine: AsyncEngine,
        sessions: async_sessionmaker[AsyncSession],
        reader: ProfileReader | None = None,
    ) -> None:
        self._engine = engine
        self._sessions = sessions
        self._reader = reader

    async def get(self, user_id: uuid.UUID) -> Profile | None:
        if self._reader is not None:
            try:
                values = await self._reader.profile(user_id)
            except ReadUnavailableError as error:
                log.warning("fast profile read failed (%s); reading through SQLAlchemy", error)
            else:
                return None if values is None else _profile(values)
        async with self._engine.connect() as connection:
            row = (await connection.execute(PROFILE_BY_ID, {"user_id": user_id})).first()
        return None if row is None else _profile(row._mapping)

    async def page(self, limit: int, after: PagePosition | None) -> Sequence[Profile]:
        statement = select(profiles).order_by(profiles.c.created_at, profiles.c.id).limit(limit)
        if after is not None:
            statement = statement.where(
                tuple_(profiles.c.created_at, profiles.c.id) > tuple_(after.created_at, after.id)
            )
        async with self._engine.connect() as connection:
            rows = (await connection.execute(statement)).all()
        return [_profile(row._mapping) for row in rows]

    async def update(
        self, user_id: uuid.UUID, changes: Mapping[str, str | None], at: datetime
    ) -> Profile | None:
        values = _checked(changes, _PROFILE_COLUMNS)
        async with self._sessions() as session, session.begin():
            row = (
                await session.execute(
                    update(profiles)
                    .where(
                        profiles.c.id == user_id,
                        profiles.c.status == ProfileStatus.ACTIVE.value,
                    )
                    .values(**values, updated_at=at)
                    .returning(*profiles.c)
                )
            ).first()
        return None if row is None else _profile(row._mapping)

    async def addresses(self, user_id: uuid.UUID) -> Sequence[Address]:
        statement = (
            select(addresses)
            .where(addresses.c.user_id == user_id)
            .order_by(addresses.c.created_at, addresses.c.id)
        )
        async with self._engine.connect() as connection:
            rows = (await connection.execute(statement)).all()
        return [_address(row) for row in rows]

    async def address(self, user_id: uuid.UUID, address_id: uuid.UUID) -> Address | None:
        statement = select(addresses).where(
            addresses.c.id == address_id, addresses.c.user_id == user_id
        )
        async with self._engine.connect() as connection:
            row = (await connection.execute(statement)).first()
        return None if row is None else _address(row)

    async def add_address(self, address: Address) -> ProfileStatus | None:
        async with self._sessions() as session, session.begin():
            status = await _lock_profile(session, address.user_id)
            if status is ProfileStatus.ACTIVE:
                await session.execute(
                    insert(addresses).values(
                        id=address.id,
                        user_id=address.user_id,
                        label=address.label,
                        line1=address.line1,
                        line2=address.line2,
                        city=address.city,
                        region=address.region,
                        postal_code=address.postal_code,
                        country=address.country,
                        created_at=address.created_at,
                        updated_at=address.updated_at,
                    )
                )
        return status

    async def update_address(
        self,
        user_id: uuid.UUID,
        address_id: uuid.UUID,
        changes: Mapping[str, str | None],
        at: datetime,
    ) -> Address | None:
        values = _checked(changes, _ADDRESS_COLUMNS)
        async with self._sessions() as session, session.begin():
            row = (
                await session.execute(
                    update(addresses)
                    .where(addresses.c.id == address_id, addresses.c.user_id == user_id)
                    .values(**values, updated_at=at)
                    .returning(*addresses.c)
                )
            ).first()
        return None if row is None else _address(row)

    async def delete_address(self, user_id: uuid.UUID, address_id: uuid.UUID) -> bool:
        async with self._sessions() as session, session.begin():
            result = await session.execute(
                delete(addresses).where(
                    addresses.c.id == address_id, addresses.c.user_id == user_id
                )
            )
        return _changed(result) == 1


async def _lock_profile(session: AsyncSession, user_id: uuid.UUID) -> ProfileStatus | None:
    """The profile's status, its row locked (PostgreSQL) or the database write-locked
    (SQLite) until the transaction ends: an `UPDATE` that changes nothing does both."""
    status = (
        await session.execute(
            update(profiles)
            .where(profiles.c.id == user_id)
            .values(status=profiles.c.status)
            .returning(profiles.c.status)
        )
    ).scalar_one_or_none()
    return None if status is None else ProfileStatus(status)


def _changed(result: Any) -> int:
    return int(result.rowcount)


class SqlProfileLedger:
    """`ProfileLedger` on one session: the transaction of an `IdempotentHandler`."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def lock(self, user_id: uuid.UUID, at: datetime) -> Profile | None:
        # One statement makes sure the row exists and locks it: an insert that, on conflict,
        # "updates" the row to itself and returns it. A concurrent handler for the same user
        # waits on the row (PostgreSQL) or the write lock (SQLite) instead of racing us to
        # create it, then reads what we committed. A row no event has been applied to yet
        # (last_sequence 0) is never committed: every event that finds none makes a change.
        dialect = self.session.get_bind().dialect.name
        insert_row = postgresql.insert if dialect == "postgresql" else sqlite.insert
        values = insert_row(profiles).values(
            {"id": user_id, **_profile_values(Profile.blank(user_id, at))}
        )
        upsert = values.on_conflict_do_update(
            index_elements=[profiles.c.id], set_={"id": values.excluded.id}
        ).returning(*profiles.c)
        profile = _profile((await self.session.execute(upsert)).one()._mapping)
        return None if profile.last_sequence == 0 else profile

    async def save(self, profile: Profile) -> None:
        await self.session.execute(
            update(profiles).where(profiles.c.id == profile.id).values(_profile_values(profile))
        )

    async def erase_addresses(self, user_id: uuid.UUID) -> None:
        await self.session.execute(delete(addresses).where(addresses.c.user_id == user_id))


class SqlUserStore(SqlStore):
    """The user database: its engine, sessions, repository, migrations and health."""

    def __init__(self, database_url: str, **engine_options: Any) -> None:
        super().__init__(database_url, MIGRATIONS, **engine_options)
        self._reader = profile_reader(database_url)
        self.profiles = SqlProfileRepository(self.engine, self.sessions, self._reader)
        # SQLite has one writer at a time; its waiting writers sleep and poll, so handlers that
        # queue on a lock in the process first get through far sooner than racing for it.
        self.one_writer_at_a_time = self.engine.dialect.name == "sqlite"

    def ledger(self, session: AsyncSession) -> SqlProfileLedger:
        return SqlProfileLedger(session)

    async def prune(self, processed_event_retention: timedelta, now: datetime) -> dict[str, int]:
        """Delete the processed-event records older than the retention; how many, per table."""
        rule = retention.processed_events(processed_events, processed_event_retention)
        return await retention.prune(self.sessions, [rule], now=now)

    async def dispose(self) -> None:
        try:
            if self._reader is not None:
                await self._reader.dispose()
        finally:
            await super().dispose()
