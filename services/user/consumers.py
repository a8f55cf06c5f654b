"""The receive operation `receiveUserEvents` of `contracts/asyncapi/user-service.yaml`:
`user.created` and `user.deactivated` from the service's queue to the handlers.

Each event's effect commits in one transaction with its `(consumer, eventId)` record
(`IdempotentHandler`), so a redelivered event is acknowledged without a second effect; the
handlers' `sequence` rules make the outcome independent of the order of delivery.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Final, Protocol

from generated.events import models as events
from services.kit.bus import Delivery, EventConsumer
from services.kit.database import AsyncSession
from services.kit.events import Event
from services.kit.idempotency import IdempotentHandler
from services.user import handlers
from services.user.domain import UserCreated, UserDeactivated
from services.user.ports import RolesClient
from services.user.storage import SqlUserStore, processed_events

CONSUMER: Final = "user-service"
USER_CREATED: Final = "user.created"
USER_DEACTIVATED: Final = "user.deactivated"


class EventHandler(Protocol):
    """An event type's handler: what the consumer calls, and `apply` for direct use."""

    async def __call__(self, event: Event, delivery: Delivery) -> None: ...

    async def apply(self, event: Event) -> bool:
        """Apply the event; false if it had been applied already."""
        ...


class OneAtATime:
    """An `IdempotentHandler` whose transactions run one at a time (SQLite's one writer)."""

    def __init__(self, handler: IdempotentHandler, lock: asyncio.Lock) -> None:
        self._handler = handler
        self._lock = lock

    async def __call__(self, event: Event, delivery: Delivery) -> None:
        await self.apply(event)

    async def apply(self, event: Event) -> bool:
        async with self._lock:
            return await self._handler.apply(event)


def event_handlers(
    store: SqlUserStore, clock: Callable[[], datetime], roles: RolesClient | None = None
) -> Mapping[str, EventHandler]:
    """The idempotent handler of each event type the user service receives. A deactivation
    also drops the cached roles of the user, so that a deactivated admin is refused as soon as
    the event arrives rather than when the cache expires."""

    async def on_user_created(event: Event, session: AsyncSession) -> None:
        if not isinstance(event, events.UserCreatedPayload):
            raise TypeError(f"expected user.created, got {event.eventType}")
        created = UserCreated(event.userId, str(event.email), event.sequence)
        await handlers.record_user_created(created, store.ledger(session), clock())

    async def on_user_deactivated(event: Event, session: AsyncSession) -> None:
        if not isinstance(event, events.UserDeactivatedPayload):
            raise TypeError(f"expected user.deactivated, got {event.eventType}")
        deactivated = UserDeactivated(event.userId, event.sequence)
        await handlers.record_user_deactivated(deactivated, store.ledger(session), clock())
        if roles is not None:
            roles.evict(event.userId)

    handlers_by_type = {
        USER_CREATED: IdempotentHandler(
            CONSUMER, store.sessions, processed_events, on_user_created, clock
        ),
        USER_DEACTIVATED: IdempotentHandler(
            CONSUMER, store.sessions, processed_events, on_user_deactivated, clock
        ),
    }
    if not store.one_writer_at_a_time:
        return handlers_by_type
    lock = asyncio.Lock()
    return {kind: OneAtATime(handler, lock) for kind, handler in handlers_by_type.items()}


def subscribe(consumer: EventConsumer, handlers_by_type: Mapping[str, EventHandler]) -> None:
    for event_type, handler in handlers_by_type.items():
        consumer.subscribe(event_type, handler)
