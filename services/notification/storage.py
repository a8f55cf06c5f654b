"""The notification service's storage on SQLAlchemy Core: the notification log, the users'
deactivation tombstones and the processed-event records, on SQLite or PostgreSQL. The schema
is created by the Alembic history in `services/notification/migrations/`, which must match
`metadata` (a test compares them).

Every check-then-change is an `INSERT … ON CONFLICT DO NOTHING` or a conditional `UPDATE`
whose row count decides, so two workers can never both claim one email, on either database.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from sqlalchemy import (
    BigInteger,
    Column,
    Index,
    Integer,
    Row,
    String,
    Table,
    Uuid,
    and_,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.kit import retention
from services.kit.database import UtcDateTime, service_metadata
from services.kit.idempotency import processed_events_table
from services.kit.store import SqlStore
from services.notification.domain import (
    CHANNEL_EMAIL,
    LISTED_STATUSES,
    Claim,
    DeliveryStatus,
    ListNotifications,
    NewEntry,
    Notification,
    NotificationType,
    Page,
    SkipReason,
)

MIGRATIONS = Path(__file__).resolve().parent / "migrations"

# The name under which this service's records live in `processed_events`.
CONSUMER = "notification-service"

metadata = service_metadata()

notifications = Table(
    "notifications",
    metadata,
    Column("id", Uuid(), primary_key=True),
    Column("event_id", Uuid(), nullable=False, unique=True),
    Column("user_id", Uuid(), nullable=False),
    # The event's per-user `sequence`: a deactivation erases the entries of older events.
    Column("sequence", BigInteger(), nullable=False),
    Column("type", String(32), nullable=False),
    Column("channel", String(16), nullable=False),
    Column("status", String(16), nullable=False),
    Column("recipient", String(254), nullable=True),
    Column("subject", String(200), nullable=False),
    Column("reason", String(64), nullable=True),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("sent_at", UtcDateTime(), nullable=True),
    # How many times a worker claimed the entry to send it (more than one: retries).
    Column("attempts", Integer(), nullable=False, server_default="0"),
    # The worker that is sending the email, and until when its claim holds.
    Column("claim_token", Uuid(), nullable=True),
    Column("claimed_until", UtcDateTime(), nullable=True),
    Index("ix_notifications_created_at_id", "created_at", "id"),
    Index("ix_notifications_user_id_created_at_id", "user_id", "created_at", "id"),
)

# One row per user the service has handled an event about; a deactivated user's row is the
# tombstone (`deactivated_sequence`). It holds no personal data.
users = Table(
    "users",
    metadata,
    Column("id", Uuid(), primary_key=True),
    Column("deactivated_sequence", BigInteger(), nullable=True),
    Column("deactivated_at", UtcDateTime(), nullable=True),
)

processed_events = processed_events_table(metadata)


def _insert(session: AsyncSession, table: Table) -> Any:
    """The dialect's INSERT, which knows `ON CONFLICT` (SQLite and PostgreSQL alike)."""
    if session.get_bind().dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


def _changed(result: Any) -> int:
    return int(result.rowcount)


def _notification(row: Row[Any]) -> Notification:
    return Notification(
        id=row.id,
        event_id=row.event_id,
        user_id=row.user_id,
        kind=NotificationType(row.type),
        channel=row.channel,
        status=DeliveryStatus(row.status),
        recipient=row.recipient,
        subject=row.subject,
        reason=row.reason,
        created_at=row.created_at,
        sent_at=row.sent_at,
    )


class SqlNotificationLog:
    """`NotificationLog` on the `notifications` table."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    def _values(self, entry: NewEntry, now: datetime) -> dict[str, Any]:
        return {
            "id": entry.id,
            "event_id": entry.event_id,
            "user_id": entry.user_id,
            "sequence": entry.sequence,
            "type": entry.kind.value,
            "channel": CHANNEL_EMAIL,
            "recipient": entry.recipient,
            "subject": entry.subject,
            "created_at": now,
        }

    async def _insert_new(self, values: Mapping[str, Any]) -> bool:
        statement = (
            _insert(self.session, notifications)
            .values(**values)
            .on_conflict_do_nothing(index_elements=["event_id"])
        )
        return _changed(await self.session.execute(statement)) == 1

    @staticmethod
    def _unclaimed(event_id: uuid.UUID, now: datetime) -> Any:
        t = notifications
        return and_(
            t.c.event_id == event_id,
            t.c.status == DeliveryStatus.SENDING.value,
            or_(t.c.claimed_until.is_(None), t.c.claimed_until <= now),
        )

    async def claim(self, entry: NewEntry, now: datetime, until: datetime) -> Claim | None:
        token = uuid.uuid4()
        values = self._values(entry, now) | {
            "status": DeliveryStatus.SENDING.value,
            "attempts": 1,
            "claim_token": token,
            "claimed_until": until,
        }
        if await self._insert_new(values):
            return Claim(entry.event_id, token, until)
        t = notifications
        result = await self.session.execute(
            update(t)
            .where(self._unclaimed(entry.event_id, now))
            .values(claim_token=token, claimed_until=until, attempts=t.c.attempts + 1)
        )
        return Claim(entry.event_id, token, until) if _changed(result) == 1 else None

    async def release(self, claim: Claim) -> None:
        t = notifications
        await self.session.execute(
            update(t)
            .where(t.c.event_id == claim.event_id, t.c.claim_token == claim.token)
            .values(claim_token=None, claimed_until=None)
        )

    async def complete(self, claim: Claim, sent_at: datetime) -> bool:
        t = notifications
        result = await self.session.execute(
            update(t)
            .where(
                t.c.event_id == claim.event_id,
                t.c.claim_token == claim.token,
                t.c.status == DeliveryStatus.SENDING.value,
            )
            .values(
                status=DeliveryStatus.SENT.value,
                sent_at=sent_at,
                # The entry is listed from now on, at the moment it was settled.
                created_at=sent_at,
                claim_token=None,
                claimed_until=None,
            )
        )
        return _changed(result) == 1

    async def settle_skipped(self, entry: NewEntry, reason: SkipReason, now: datetime) -> bool:
        values = self._values(entry, now) | {
            "status": DeliveryStatus.SKIPPED.value,
            "reason": reason.value,
            "attempts": 0,
        }
        if await self._insert_new(values):
            return True
        result = await self.session.execute(
            update(notifications)
            .where(self._unclaimed(entry.event_id, now))
            .values(
                status=DeliveryStatus.SKIPPED.value,
                reason=reason.value,
                recipient=entry.recipient,
                created_at=now,
                claim_token=None,
                claimed_until=None,
            )
        )
        return _changed(result) == 1

    async def erase_recipients(self, user_id: uuid.UUID, before_sequence: int) -> int:
        t = notifications
        result = await self.session.execute(
            update(t)
            .where(
                t.c.user_id == user_id,
                t.c.sequence < before_sequence,
                t.c.recipient.is_not(None),
            )
            .values(recipient=None)
        )
        return _changed(result)

    async def page(self, query: ListNotifications) -> Page:
        t = notifications
        statement = select(t).where(t.c.status.in_([s.value for s in LISTED_STATUSES]))
        if query.user_id is not None:
            statement = statement.where(t.c.user_id == query.user_id)
        if query.kind is not None:
            statement = statement.where(t.c.type == query.kind.value)
        if query.after is not None:
            after = query.after
            statement = statement.where(
                or_(
                    t.c.created_at < after.created_at,
                    and_(t.c.created_at == after.created_at, t.c.id < after.id),
                )
            )
        statement = statement.order_by(t.c.created_at.desc(), t.c.id.desc()).limit(query.limit + 1)
        rows = (await self.session.execute(statement)).all()
        items = [_notification(row) for row in rows[: query.limit]]
        more = len(rows) > query.limit
        return Page(items=items, next=items[-1].position if more and items else None)


class SqlUserRegistry:
    """`UserRegistry` on the `users` table."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def lock(self, user_id: uuid.UUID) -> int | None:
        # An upsert that changes nothing still takes the row lock (PostgreSQL) or the write
        # lock (SQLite), and it is the transaction's first write, so what follows is ordered.
        statement = (
            _insert(self.session, users)
            .values(id=user_id)
            .on_conflict_do_update(
                index_elements=["id"],
                set_={"deactivated_sequence": users.c.deactivated_sequence},
            )
            .returning(users.c.deactivated_sequence)
        )
        sequence = (await self.session.execute(statement)).scalar_one()
        return None if sequence is None else int(sequence)

    async def mark_deactivated(self, user_id: uuid.UUID, sequence: int, at: datetime) -> None:
        await self.session.execute(
            update(users)
            .where(
                users.c.id == user_id,
                or_(
                    users.c.deactivated_sequence.is_(None),
                    users.c.deactivated_sequence < sequence,
                ),
            )
            .values(deactivated_sequence=sequence, deactivated_at=at)
        )


class SqlProcessedEvents:
    """`ProcessedEvents` on the kit's `processed_events` table, as `notification-service`."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def contains(self, event_id: uuid.UUID) -> bool:
        t = processed_events
        statement = select(t.c.event_id).where(t.c.consumer == CONSUMER, t.c.event_id == event_id)
        return (await self.session.execute(statement)).first() is not None

    async def add(self, event_id: uuid.UUID, event_type: str, at: datetime) -> bool:
        statement = (
            _insert(self.session, processed_events)
            .values(consumer=CONSUMER, event_id=event_id, event_type=event_type, processed_at=at)
            .on_conflict_do_nothing(index_elements=["consumer", "event_id"])
        )
        return _changed(await self.session.execute(statement)) == 1


class SqlUnitOfWork:
    """`UnitOfWork` on one `AsyncSession`."""

    session: AsyncSession
    notifications: SqlNotificationLog
    users: SqlUserRegistry
    processed: SqlProcessedEvents

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def __aenter__(self) -> Self:
        self.session = self._sessions()
        self.notifications = SqlNotificationLog(self.session)
        self.users = SqlUserRegistry(self.session)
        self.processed = SqlProcessedEvents(self.session)
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

    async def commit(self) -> None:
        await self.session.commit()


class SqlNotificationDatabase(SqlStore):
    """The notification database: its engine, its sessions, its migrations, its health."""

    def __init__(self, database_url: str) -> None:
        super().__init__(database_url, MIGRATIONS)

    def unit_of_work(self) -> SqlUnitOfWork:
        return SqlUnitOfWork(self.sessions)

    async def prune(self, processed_event_retention: timedelta, now: datetime) -> dict[str, int]:
        """Delete the processed-event records older than the retention; how many, per table."""
        rule = retention.processed_events(processed_events, processed_event_retention)
        return await retention.prune(self.sessions, [rule], now=now)
