"""The auth service's storage on SQLAlchemy Core: accounts, refresh tokens, single-use tokens
and the outbox, on SQLite or PostgreSQL. The schema is created by the Alembic history in
`services/auth/migrations/`, which must match `metadata` (a test compares them).

Every check-then-change is a conditional `UPDATE` whose row count decides, so concurrent
requests cannot both spend one token or both deactivate one account, on either database.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    ForeignKey,
    Index,
    Integer,
    Row,
    String,
    Table,
    Uuid,
    insert,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.types import JSON

from generated.auth.events import Publisher
from services.auth import event_payloads
from services.auth.domain import (
    EMAIL_KEY_MAX_LENGTH,
    Account,
    AccountStatus,
    DomainEvent,
    EmailTakenError,
    RefreshTokenRecord,
    SingleUseTokenRecord,
    TokenPurpose,
    email_key,
)
from services.kit.database import UtcDateTime, service_metadata
from services.kit.outbox import OutboxEventPublisher, RelaySignal, outbox_table
from services.kit.store import SqlStore

MIGRATIONS = Path(__file__).resolve().parent / "migrations"

metadata = service_metadata()

accounts = Table(
    "accounts",
    metadata,
    Column("id", Uuid(), primary_key=True),
    Column("email", String(254), nullable=False),
    # `email_key(email)`: what uniqueness and look-ups use (the rule is in `domain.py`).
    Column("email_key", String(EMAIL_KEY_MAX_LENGTH), nullable=False, unique=True),
    Column("password_hash", String(255), nullable=False),
    Column("email_verified", Boolean(), nullable=False),
    Column("roles", JSON(), nullable=False),
    Column("status", String(20), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("deactivated_at", UtcDateTime(), nullable=True),
    # The last `sequence` given to an event about this user (events carry it for ordering).
    Column("event_sequence", BigInteger(), nullable=False, server_default="0"),
)

refresh_tokens = Table(
    "refresh_tokens",
    metadata,
    Column("id", Uuid(), primary_key=True),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("family_id", Uuid(), nullable=False, index=True),
    Column(
        "user_id", Uuid(), ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False, index=True
    ),
    Column("issued_at", UtcDateTime(), nullable=False),
    Column("expires_at", UtcDateTime(), nullable=False),
    Column("spent_at", UtcDateTime(), nullable=True),
    Column("revoked_at", UtcDateTime(), nullable=True),
)

single_use_tokens = Table(
    "single_use_tokens",
    metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("purpose", String(32), nullable=False),
    Column(
        "user_id", Uuid(), ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False, index=True
    ),
    Column("issued_at", UtcDateTime(), nullable=False),
    Column("expires_at", UtcDateTime(), nullable=False),
    Column("used_at", UtcDateTime(), nullable=True),
)

outbox = outbox_table(metadata)

# The rate limiters' sliding-window log, shared by every replica (`services/auth/ratelimit.py`).
# `key` is a digest of the limit and its subject: no email or address is stored.
rate_limit_events = Table(
    "rate_limit_events",
    metadata,
    Column("id", BigInteger().with_variant(Integer(), "sqlite"), primary_key=True),
    Column("key", String(64), nullable=False),
    Column("limit_name", String(64), nullable=False),
    Column("at", UtcDateTime(), nullable=False),
    Index("ix_rate_limit_events_key_at", "key", "at"),
)


def _account(row: Row[Any]) -> Account:
    return Account(
        id=row.id,
        email=row.email,
        password_hash=row.password_hash,
        email_verified=bool(row.email_verified),
        roles=frozenset(row.roles),
        status=AccountStatus(row.status),
        created_at=row.created_at,
    )


class SqlAccountRepository:
    """`AccountRepository` on the `accounts` table."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, account: Account) -> None:
        try:
            await self.session.execute(
                insert(accounts).values(
                    id=account.id,
                    email=account.email,
                    email_key=email_key(account.email),
                    password_hash=account.password_hash,
                    email_verified=account.email_verified,
                    roles=sorted(account.roles),
                    status=account.status.value,
                    created_at=account.created_at,
                    event_sequence=0,
                )
            )
        except IntegrityError:
            raise EmailTakenError from None

    async def get(self, user_id: uuid.UUID) -> Account | None:
        row = (await self.session.execute(select(accounts).where(accounts.c.id == user_id))).first()
        return None if row is None else _account(row)

    async def by_email(self, email: str, *, lock: bool = False) -> Account | None:
        statement = select(accounts).where(accounts.c.email_key == email_key(email))
        if lock:  # SELECT ... FOR UPDATE on PostgreSQL; SQLite has one writer anyway
            statement = statement.with_for_update()
        row = (await self.session.execute(statement)).first()
        return None if row is None else _account(row)

    async def set_password_hash(self, user_id: uuid.UUID, password_hash: str) -> None:
        await self.session.execute(
            update(accounts).where(accounts.c.id == user_id).values(password_hash=password_hash)
        )

    async def replace_password_hash(self, user_id: uuid.UUID, old: str, new: str) -> bool:
        result = await self.session.execute(
            update(accounts)
            .where(accounts.c.id == user_id, accounts.c.password_hash == old)
            .values(password_hash=new)
        )
        return _changed(result) == 1

    async def mark_email_verified(self, user_id: uuid.UUID) -> None:
        await self.session.execute(
            update(accounts).where(accounts.c.id == user_id).values(email_verified=True)
        )

    async def deactivate(self, user_id: uuid.UUID, at: datetime) -> bool:
        result = await self.session.execute(
            update(accounts)
            .where(accounts.c.id == user_id, accounts.c.status == AccountStatus.ACTIVE.value)
            .values(status=AccountStatus.DEACTIVATED.value, deactivated_at=at)
        )
        return _changed(result) == 1

    async def set_roles(self, user_id: uuid.UUID, roles: frozenset[str]) -> bool:
        result = await self.session.execute(
            update(accounts).where(accounts.c.id == user_id).values(roles=sorted(roles))
        )
        return _changed(result) == 1

    async def next_sequence(self, user_id: uuid.UUID) -> int:
        """Take the user's next event sequence; the row lock orders concurrent takers."""
        result = await self.session.execute(
            update(accounts)
            .where(accounts.c.id == user_id)
            .values(event_sequence=accounts.c.event_sequence + 1)
            .returning(accounts.c.event_sequence)
        )
        sequence = result.scalar_one_or_none()
        if sequence is None:
            raise LookupError(f"no account {user_id} to number an event for")
        return int(sequence)


def _refresh(row: Row[Any]) -> RefreshTokenRecord:
    return RefreshTokenRecord(
        id=row.id,
        token_hash=row.token_hash,
        family_id=row.family_id,
        user_id=row.user_id,
        issued_at=row.issued_at,
        expires_at=row.expires_at,
        spent_at=row.spent_at,
        revoked_at=row.revoked_at,
    )


class SqlRefreshTokenRepository:
    """`RefreshTokenRepository` on the `refresh_tokens` table."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, record: RefreshTokenRecord) -> None:
        await self.session.execute(
            insert(refresh_tokens).values(
                id=record.id,
                token_hash=record.token_hash,
                family_id=record.family_id,
                user_id=record.user_id,
                issued_at=record.issued_at,
                expires_at=record.expires_at,
                spent_at=record.spent_at,
                revoked_at=record.revoked_at,
            )
        )

    async def by_hash(self, token_hash: str) -> RefreshTokenRecord | None:
        statement = (
            select(refresh_tokens)
            .where(refresh_tokens.c.token_hash == token_hash)
            .with_for_update()
        )
        row = (await self.session.execute(statement)).first()
        return None if row is None else _refresh(row)

    async def spend(self, token_id: uuid.UUID, at: datetime) -> bool:
        result = await self.session.execute(
            update(refresh_tokens)
            .where(
                refresh_tokens.c.id == token_id,
                refresh_tokens.c.spent_at.is_(None),
                refresh_tokens.c.revoked_at.is_(None),
            )
            .values(spent_at=at)
        )
        return _changed(result) == 1

    async def revoke_family(self, family_id: uuid.UUID, at: datetime) -> None:
        await self.session.execute(
            update(refresh_tokens)
            .where(refresh_tokens.c.family_id == family_id, refresh_tokens.c.revoked_at.is_(None))
            .values(revoked_at=at)
        )

    async def revoke_all(self, user_id: uuid.UUID, at: datetime) -> None:
        await self.session.execute(
            update(refresh_tokens)
            .where(refresh_tokens.c.user_id == user_id, refresh_tokens.c.revoked_at.is_(None))
            .values(revoked_at=at)
        )


class SqlSingleUseTokenRepository:
    """`SingleUseTokenRepository` on the `single_use_tokens` table."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, record: SingleUseTokenRecord) -> None:
        await self.session.execute(
            insert(single_use_tokens).values(
                token_hash=record.token_hash,
                purpose=record.purpose.value,
                user_id=record.user_id,
                issued_at=record.issued_at,
                expires_at=record.expires_at,
            )
        )

    def _usable(self, token_hash: str, purpose: TokenPurpose, at: datetime) -> Any:
        t = single_use_tokens
        return (
            (t.c.token_hash == token_hash)
            & (t.c.purpose == purpose.value)
            & t.c.used_at.is_(None)
            & (t.c.expires_at > at)
        )

    async def usable(
        self, token_hash: str, purpose: TokenPurpose, at: datetime
    ) -> uuid.UUID | None:
        statement = select(single_use_tokens.c.user_id).where(self._usable(token_hash, purpose, at))
        user_id: uuid.UUID | None = (await self.session.execute(statement)).scalar_one_or_none()
        return user_id

    async def spend(self, token_hash: str, purpose: TokenPurpose, at: datetime) -> uuid.UUID | None:
        result = await self.session.execute(
            update(single_use_tokens)
            .where(self._usable(token_hash, purpose, at))
            .values(used_at=at)
            .returning(single_use_tokens.c.user_id)
        )
        user_id: uuid.UUID | None = result.scalar_one_or_none()
        return user_id

    async def discard_all(self, user_id: uuid.UUID, purpose: TokenPurpose, at: datetime) -> None:
        t = single_use_tokens
        await self.session.execute(
            update(t)
            .where(t.c.user_id == user_id, t.c.purpose == purpose.value, t.c.used_at.is_(None))
            .values(used_at=at)
        )


def _changed(result: Any) -> int:
    return int(result.rowcount)


class SqlUnitOfWork:
    """`UnitOfWork` on one `AsyncSession`; events go to the outbox in the same transaction."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *,
        clock: Callable[[], datetime],
        relay_signal: RelaySignal,
    ) -> None:
        self._sessions = sessions
        self._clock = clock
        self._relay_signal = relay_signal

    async def __aenter__(self) -> Self:
        self.session = self._sessions()
        self.accounts = SqlAccountRepository(self.session)
        self.refresh_tokens = SqlRefreshTokenRepository(self.session)
        self.single_use_tokens = SqlSingleUseTokenRepository(self.session)
        self._outbox = OutboxEventPublisher(
            self.session, outbox, clock=self._clock, signal=self._relay_signal
        )
        # The contract's send operations, writing into the outbox in this transaction.
        self._publisher = Publisher(self._outbox)
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        try:
            await self.session.rollback()  # a no-op after a commit
        finally:
            await self.session.close()

    async def record(self, event: DomainEvent) -> None:
        sequence = await self.accounts.next_sequence(event.user_id)
        await event_payloads.publish(self._publisher, event, sequence=sequence, at=self._clock())

    async def commit(self) -> None:
        await self.session.commit()
        self._outbox.committed()  # the relay publishes now, not at its next poll


class SqlAuthStore(SqlStore):
    """The auth database: its engine, its sessions, its migrations, its health."""

    def __init__(self, database_url: str, *, clock: Callable[[], datetime]) -> None:
        super().__init__(database_url, MIGRATIONS)
        self.clock = clock
        # Woken after every commit that recorded events; the app connects its relay.
        self.relay_signal = RelaySignal()

    def unit_of_work(self) -> SqlUnitOfWork:
        return SqlUnitOfWork(self.sessions, clock=self.clock, relay_signal=self.relay_signal)
