"""An in-memory fake of the notification handlers' unit of work, for handler tests without a
database.

Test-only (the harness's in-memory stack runs the real SQL adapters on SQLite), hence here
rather than in `services/notification`. Like the SQL unit of work, it works on a copy of the
committed state and publishes the copy only on `commit`; leaving without committing
discards it. The rules of each method are those of `services/notification/storage.py`.
"""

from __future__ import annotations

import copy
import uuid
from dataclasses import dataclass, field, replace
from datetime import datetime
from types import TracebackType
from typing import Self

from services.notification.domain import (
    LISTED_STATUSES,
    Claim,
    DeliveryStatus,
    ListNotifications,
    NewEntry,
    Notification,
    Page,
    SkipReason,
)


@dataclass(frozen=True)
class Entry:
    """One row of the log, with what only the storage sees: the claim and the attempts."""

    notification: Notification
    sequence: int
    attempts: int = 0
    claim_token: uuid.UUID | None = None
    claimed_until: datetime | None = None

    def unclaimed(self, now: datetime) -> bool:
        return self.notification.status is DeliveryStatus.SENDING and (
            self.claimed_until is None or self.claimed_until <= now
        )


@dataclass
class NotificationState:
    entries: dict[uuid.UUID, Entry] = field(default_factory=dict)  # by event id
    deactivated: dict[uuid.UUID, int | None] = field(default_factory=dict)  # the users table
    processed: dict[uuid.UUID, str] = field(default_factory=dict)  # event id → event type


def _notification(entry: NewEntry, status: DeliveryStatus, now: datetime) -> Notification:
    return Notification(
        id=entry.id,
        event_id=entry.event_id,
        user_id=entry.user_id,
        kind=entry.kind,
        channel="email",
        status=status,
        recipient=entry.recipient,
        subject=entry.subject,
        reason=None,
        created_at=now,
        sent_at=None,
    )


class FakeNotificationLog:
    def __init__(self, state: NotificationState) -> None:
        self.state = state

    async def claim(self, entry: NewEntry, now: datetime, until: datetime) -> Claim | None:
        token = uuid.uuid4()
        current = self.state.entries.get(entry.event_id)
        if current is None:
            sending = _notification(entry, DeliveryStatus.SENDING, now)
            self.state.entries[entry.event_id] = Entry(sending, entry.sequence, 1, token, until)
            return Claim(entry.event_id, token, until)
        if not current.unclaimed(now):
            return None
        self.state.entries[entry.event_id] = replace(
            current, attempts=current.attempts + 1, claim_token=token, claimed_until=until
        )
        return Claim(entry.event_id, token, until)

    async def release(self, claim: Claim) -> None:
        current = self.state.entries.get(claim.event_id)
        if current is not None and current.claim_token == claim.token:
            self.state.entries[claim.event_id] = replace(
                current, claim_token=None, claimed_until=None
            )

    async def complete(self, claim: Claim, sent_at: datetime) -> bool:
        current = self.state.entries.get(claim.event_id)
        if (
            current is None
            or current.claim_token != claim.token
            or current.notification.status is not DeliveryStatus.SENDING
        ):
            return False
        notification = replace(
            current.notification, status=DeliveryStatus.SENT, sent_at=sent_at, created_at=sent_at
        )
        self.state.entries[claim.event_id] = replace(
            current, notification=notification, claim_token=None, claimed_until=None
        )
        return True

    async def settle_skipped(self, entry: NewEntry, reason: SkipReason, now: datetime) -> bool:
        current = self.state.entries.get(entry.event_id)
        if current is not None and not current.unclaimed(now):
            return False
        notification = replace(
            _notification(entry, DeliveryStatus.SKIPPED, now), reason=reason.value
        )
        if current is not None:
            notification = replace(notification, id=current.notification.id)
        attempts = 0 if current is None else current.attempts
        self.state.entries[entry.event_id] = Entry(notification, entry.sequence, attempts)
        return True

    async def erase_recipients(self, user_id: uuid.UUID, before_sequence: int) -> int:
        erased = 0
        for event_id, current in list(self.state.entries.items()):
            notification = current.notification
            if (
                notification.user_id == user_id
                and current.sequence < before_sequence
                and notification.recipient is not None
            ):
                erased += 1
                self.state.entries[event_id] = replace(
                    current, notification=replace(notification, recipient=None)
                )
        return erased

    async def page(self, query: ListNotifications) -> Page:
        listed = [
            e.notification
            for e in self.state.entries.values()
            if e.notification.status in LISTED_STATUSES
            and (query.user_id is None or e.notification.user_id == query.user_id)
            and (query.kind is None or e.notification.kind is query.kind)
            and (query.after is None or (e.notification.created_at, e.notification.id)
                 < (query.after.created_at, query.after.id))
        ]  # fmt: skip
        listed.sort(key=lambda n: (n.created_at, n.id), reverse=True)
        items = listed[: query.limit]
        more = len(listed) > query.limit
        return Page(items=items, next=items[-1].position if more and items else None)


class FakeUserRegistry:
    def __init__(self, state: NotificationState) -> None:
        self.state = state

    async def lock(self, user_id: uuid.UUID) -> int | None:
        return self.state.deactivated.setdefault(user_id, None)

    async def mark_deactivated(self, user_id: uuid.UUID, sequence: int, at: datetime) -> None:
        known = self.state.deactivated.get(user_id)
        if known is None or known < sequence:
            self.state.deactivated[user_id] = sequence


class FakeProcessedEvents:
    def __init__(self, state: NotificationState) -> None:
        self.state = state

    async def contains(self, event_id: uuid.UUID) -> bool:
        return event_id in self.state.processed

    async def add(self, event_id: uuid.UUID, event_type: str, at: datetime) -> bool:
        if event_id in self.state.processed:
            return False
        self.state.processed[event_id] = event_type
        return True


class FakeNotificationDatabase:
    """The committed state and a factory of units of work over it
    (`handlers.Dependencies.unit_of_work`)."""

    def __init__(self) -> None:
        self.state = NotificationState()

    def unit_of_work(self) -> FakeUnitOfWork:
        return FakeUnitOfWork(self)

    def entry(self, event_id: uuid.UUID) -> Entry:
        return self.state.entries[event_id]


class FakeUnitOfWork:
    """`UnitOfWork` over a copy of the committed state; `commit` publishes the copy."""

    def __init__(self, database: FakeNotificationDatabase) -> None:
        self._database = database

    async def __aenter__(self) -> Self:
        self._state = copy.deepcopy(self._database.state)
        self.notifications = FakeNotificationLog(self._state)
        self.users = FakeUserRegistry(self._state)
        self.processed = FakeProcessedEvents(self._state)
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        return None  # the copy is dropped: nothing uncommitted reaches the database

    async def commit(self) -> None:
        self._database.state = copy.deepcopy(self._state)
