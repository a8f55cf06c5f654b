"""The receive operation `receiveUserEvents` of `contracts/asyncapi/user-service.yaml`:
`UserEvents` implements the generated `Receiver` (one method per message the operation takes),
and the generated `subscriptions` table routes each event type to it.

Each event's effect commits in one transaction with its `(consumer, eventId)` record
(`idempotent_subscriptions`), so a redelivered event is acknowledged without a second effect;
the handlers' `sequence` rules make the outcome independent of the order of delivery.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime
from typing import Final

from generated.events import catalog
from generated.events import models as events
from generated.user import events as receiver
from services.kit.bus import Delivery, EventConsumer
from services.kit.consumer import RoutedHandler, Routes, subscribe_routes
from services.kit.events import Event
from services.kit.idempotency import Transaction, idempotent_subscriptions
from services.user import handlers
from services.user.domain import UserCreated, UserDeactivated
from services.user.ports import RolesClient
from services.user.storage import SqlUserStore, processed_events

CONSUMER: Final = "user-service"
QUEUE: Final = receiver.QUEUE
FILTER_POLICY: Final = receiver.FILTER_POLICY
USER_CREATED: Final = catalog.USER_CREATED
USER_DEACTIVATED: Final = catalog.USER_DEACTIVATED


class UserEvents(receiver.Receiver):
    """The user service's handlers of the auth service's events, each applied inside the
    transaction `transaction` holds. A deactivation also drops the cached roles of the user,
    so that a deactivated admin is refused as soon as the event arrives rather than when the
    cache expires."""

    def __init__(
        self,
        store: SqlUserStore,
        transaction: Transaction,
        clock: Callable[[], datetime],
        roles: RolesClient | None = None,
    ) -> None:
        self._store = store
        self._transaction = transaction
        self._clock = clock
        self._roles = roles

    async def on_user_created(self, event: events.UserCreatedPayload) -> bool:
        created = UserCreated(event.userId, str(event.email), event.sequence)
        ledger = self._store.ledger(self._transaction.session)
        return await handlers.record_user_created(created, ledger, self._clock())

    async def on_user_deactivated(self, event: events.UserDeactivatedPayload) -> bool:
        deactivated = UserDeactivated(event.userId, event.sequence)
        ledger = self._store.ledger(self._transaction.session)
        changed = await handlers.record_user_deactivated(deactivated, ledger, self._clock())
        if self._roles is not None:
            self._roles.evict(event.userId)
        return changed


class OneAtATime:
    """A routed handler whose transactions run one at a time (SQLite's one writer)."""

    def __init__(self, handler: RoutedHandler, lock: asyncio.Lock) -> None:
        self._handler = handler
        self._lock = lock

    async def __call__(self, event: Event, delivery: Delivery) -> bool:
        return await self.apply(event)

    async def apply(self, event: Event) -> bool:
        async with self._lock:
            return await self._handler.apply(event)


def event_handlers(
    store: SqlUserStore, clock: Callable[[], datetime], roles: RolesClient | None = None
) -> Routes:
    """The routing table of the user service: the generated `subscriptions` of `UserEvents`
    (each event type it receives → its handler), every entry an `IdempotentHandler`."""
    transaction = Transaction()
    routes = idempotent_subscriptions(
        CONSUMER,
        store.sessions,
        processed_events,
        transaction,
        # Sequence-checked: the newest event wins whatever the order of delivery (domain).
        receiver.subscriptions(UserEvents(store, transaction, clock, roles)),
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
