"""Idempotent consumers: a handler's effect and the record `(consumer, eventId)` commit in one
database transaction, so a redelivered event is acknowledged with no second effect, and a
crash between the two leaves neither.

Every entry of a service's routing table (`services.kit.consumer.Routes`) is one of two
wrappers: `IdempotentHandler`, which owns that transaction (`idempotent_routes`), or
`SelfRecordingHandler`, for an effect that cannot run inside one transaction (sending an
email) and so writes the record itself in its own final transaction.

A generated receiver's table (`generated/<service>/events.py`: `subscriptions(implementation)`,
event type → `handler(event)`) is wrapped whole by `idempotent_subscriptions`: its handlers take
only the event, and reach the session of the transaction they run in through the `Transaction`
the receiver was given."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime

from sqlalchemy import Column, DateTime, MetaData, String, Table, Uuid, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.kit.bus import Delivery
from services.kit.consumer import RoutedHandler
from services.kit.events import Event

log = logging.getLogger("accord.consumer")

Effect = Callable[[Event, AsyncSession], Awaitable[None]]


def processed_events_table(metadata: MetaData) -> Table:
    """The processed-event log, added to a service's own metadata (and its migrations)."""
    return Table(
        "processed_events",
        metadata,
        Column("consumer", String(100), primary_key=True),
        Column("event_id", Uuid(), primary_key=True),
        Column("event_type", String(100), nullable=False),
        Column("processed_at", DateTime(timezone=True), nullable=False),
    )


class IdempotentHandler:
    """A consumer handler that applies `effect` at most once per (consumer, eventId)."""

    def __init__(
        self,
        consumer: str,
        sessions: async_sessionmaker[AsyncSession],
        table: Table,
        effect: Effect,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.consumer = consumer
        self.sessions = sessions
        self.table = table
        self.effect = effect
        self.clock = clock

    async def __call__(self, event: Event, delivery: Delivery) -> bool:
        return await self.apply(event)

    async def apply(self, event: Event) -> bool:
        """Apply the event's effect; false when it had already been applied."""
        recorded = False
        try:
            async with self.sessions() as session, session.begin():
                # The record goes first: a concurrent duplicate then waits on its key and
                # fails, instead of both running the effect.
                await session.execute(
                    insert(self.table).values(
                        consumer=self.consumer,
                        event_id=event.eventId,
                        event_type=event.eventType,
                        processed_at=self.clock(),
                    )
                )
                recorded = True
                await self.effect(event, session)
        except IntegrityError:
            if recorded:
                raise  # the effect itself violated a constraint: a real failure
            log.info("%s absorbed duplicate %s %s", self.consumer, event.eventType, event.eventId)
            return False
        return True

    async def processed(self, session: AsyncSession, event_id: object) -> bool:
        row = await session.execute(
            select(self.table.c.event_id).where(
                self.table.c.consumer == self.consumer, self.table.c.event_id == event_id
            )
        )
        return row.first() is not None


def idempotent_routes(
    consumer: str,
    sessions: async_sessionmaker[AsyncSession],
    table: Table,
    effects: Mapping[str, Effect],
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> dict[str, RoutedHandler]:
    """A routing table whose every entry applies its effect through an `IdempotentHandler` of
    `consumer`: event type → effect in, event type → wrapped handler out."""
    return {
        kind: IdempotentHandler(consumer, sessions, table, effect, clock)
        for kind, effect in effects.items()
    }


class Transaction:
    """The session of the transaction in which an `IdempotentHandler` of
    `idempotent_subscriptions` is applying an event, for the receiver that makes the effect:
    the receiver is given this object when it is built, and reads `session` while it handles
    an event. Each event is applied in its own context, so events in flight side by side each
    see their own session."""

    def __init__(self) -> None:
        self._session: ContextVar[AsyncSession] = ContextVar("transaction")

    @property
    def session(self) -> AsyncSession:
        """The session of the event being applied; `LookupError` outside one."""
        try:
            return self._session.get()
        except LookupError:
            raise LookupError("no event is being applied here: no transaction") from None

    @contextmanager
    def bound(self, session: AsyncSession) -> Iterator[None]:
        token = self._session.set(session)
        try:
            yield
        finally:
            self._session.reset(token)


ReceiverHandler = Callable[[Event], Awaitable[bool]]
"""A handler of a generated `subscriptions` table (true if the event changed anything)."""


def idempotent_subscriptions(
    consumer: str,
    sessions: async_sessionmaker[AsyncSession],
    table: Table,
    transaction: Transaction,
    subscriptions: Mapping[str, ReceiverHandler],
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> dict[str, RoutedHandler]:
    """`idempotent_routes` for a generated receiver's `subscriptions` table: each handler runs
    inside the transaction that records the event, with `transaction.session` its session."""

    def effect(handler: ReceiverHandler) -> Effect:
        async def apply(event: Event, session: AsyncSession) -> None:
            with transaction.bound(session):
                await handler(event)

        return apply

    return idempotent_routes(
        consumer,
        sessions,
        table,
        {kind: effect(handler) for kind, handler in subscriptions.items()},
        clock,
    )


SelfRecordingEffect = Callable[[Event], Awaitable[bool]]


class SelfRecordingHandler:
    """A consumer handler whose effect writes its own `(consumer, eventId)` record and says
    whether the event was new (true) or a duplicate it absorbed (false)."""

    def __init__(self, effect: SelfRecordingEffect) -> None:
        self.effect = effect

    async def __call__(self, event: Event, delivery: Delivery) -> bool:
        return await self.apply(event)

    async def apply(self, event: Event) -> bool:
        return await self.effect(event)


def self_recording_routes(
    effects: Mapping[str, SelfRecordingEffect],
) -> dict[str, RoutedHandler]:
    """A routing table whose every entry is a `SelfRecordingHandler`."""
    return {kind: SelfRecordingHandler(effect) for kind, effect in effects.items()}
