"""The receive operation `receiveUserEvents` of `contracts/asyncapi/user-service.yaml`:
`user.created` and `user.deactivated` from the service's queue to the handlers.

Each event's effect commits in one transaction with its `(consumer, eventId)` record
(`IdempotentHandler`), so a redelivered event is acknowledged without a second effect; the
handlers' `sequence` rules make the outcome independent of the order of delivery.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime
from typing import Final

from generated.events import models as events
from services.kit.bus import Delivery, EventConsumer
from services.kit.consumer import RoutedHandler, Routes, event_type, subscribe_routes
from services.kit.database import AsyncSession
from services.kit.events import Event
from services.kit.idempotency import idempotent_routes
from services.user import handlers
from services.user.domain import UserCreated, UserDeactivated
from services.user.ports import RolesClient
from services.user.storage import SqlUserStore, processed_events

CONSUMER: Final = "user-service"
USER_CREATED: Final = event_type(events.UserCreatedPayload)
USER_DEACTIVATED: Final = event_type(events.UserDeactivatedPayload)


class OneAtATime:
    """A routed handler whose transactions run one at a time (SQLite's one writer)."""

    def __init__(self, handler: RoutedHandler, lock: asyncio.Lock) -> None:
        self._handler = handler
        self._lock = lock

    async def __call__(self, event: Event, delivery: Delivery) -> None:
        await self.apply(event)

    async def apply(self, event: Event) -> bool:
        async with self._lock:
            return await self._handler.apply(event)


def event_handlers(
    store: SqlUserStore, clock: Callable[[], datetime], roles: RolesClient | None = None
) -> Routes:
    """The routing table of the user service: each event type it receives → its handler, every
    one an `IdempotentHandler`. A deactivation also drops the cached roles of the user, so
    that a deactivated admin is refused as soon as the event arrives rather than when the
    cache expires."""

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

    routes = idempotent_routes(
        CONSUMER,
        store.sessions,
        processed_events,
        {
            # Sequence-checked: the newest event wins whatever the order of delivery (domain).
            USER_CREATED: on_user_created,
            USER_DEACTIVATED: on_user_deactivated,
        },
        clock,
    )
    if not store.one_writer_at_a_time:
        return routes
    # SQLite has one writer: the handlers' transactions queue here rather than on its lock.
    lock = asyncio.Lock()
    return {kind: OneAtATime(handler, lock) for kind, handler in routes.items()}


def subscribe(consumer: EventConsumer, handlers_by_type: Routes) -> None:
    """Attach the routing table `event_handlers` made to `consumer`."""
    subscribe_routes(consumer, handlers_by_type)
