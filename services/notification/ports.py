"""What the notification handlers need from the outside world, named by role. Adapters
implement these: `storage` (SQL), `mail` (SMTP, recording), `rendering` (Jinja2), `roles`
(the auth service, in memory)."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from datetime import datetime, timedelta
from types import TracebackType
from typing import TYPE_CHECKING, Protocol, Self

from services.notification.domain import (
    Claim,
    ListNotifications,
    NewEntry,
    NotificationType,
    OutgoingEmail,
    Page,
    SkipReason,
)

if TYPE_CHECKING:
    from services.kit.settings import ServiceSettings


class NotificationLog(Protocol):
    """Stores one entry per event (unique `event_id`), and who is sending which email."""

    async def claim(self, entry: NewEntry, now: datetime, until: datetime) -> Claim | None:
        """Write `entry` as `sending`, claimed until `until`; or take over an entry still
        `sending` whose claim has lapsed. None if another worker's claim is live, or if the
        entry is already settled."""
        ...

    async def release(self, claim: Claim) -> None:
        """Give up a claim (the send failed), so the next delivery may claim at once."""
        ...

    async def complete(self, claim: Claim, sent_at: datetime) -> bool:
        """Mark the claimed entry `sent`; false if the claim had been taken over meanwhile."""
        ...

    async def settle_skipped(self, entry: NewEntry, reason: SkipReason, now: datetime) -> bool:
        """Write `entry` as `skipped`, or turn an unclaimed `sending` entry into it; false if
        another worker's claim is live."""
        ...

    async def erase_recipients(self, user_id: uuid.UUID, before_sequence: int) -> int:
        """Forget the address of the user's entries from events older than `before_sequence`;
        how many entries changed."""
        ...

    async def page(self, query: ListNotifications) -> Page:
        """Settled entries, newest first, after `query.after`."""
        ...


class UserRegistry(Protocol):
    """What the service keeps per user: only the tombstone of a deactivation."""

    async def lock(self, user_id: uuid.UUID) -> int | None:
        """Serialize this transaction with every other one about the user; the `sequence` of
        the user's deactivation, or None if the user is not known to be deactivated."""
        ...

    async def mark_deactivated(self, user_id: uuid.UUID, sequence: int, at: datetime) -> None:
        """Record the deactivation (call `lock` first; the highest sequence is kept)."""
        ...


class ProcessedEvents(Protocol):
    """The `(consumer, eventId)` records of the events whose effect has committed."""

    async def contains(self, event_id: uuid.UUID) -> bool: ...

    async def add(self, event_id: uuid.UUID, event_type: str, at: datetime) -> bool:
        """Record the event in this transaction; false if it was already recorded."""
        ...


class UnitOfWork(Protocol):
    """One transaction over the log, the users and the processed events."""

    @property
    def notifications(self) -> NotificationLog: ...

    @property
    def users(self) -> UserRegistry: ...

    @property
    def processed(self) -> ProcessedEvents: ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Roll back whatever was not committed."""
        ...

    async def commit(self) -> None: ...


class UnitOfWorkFactory(Protocol):
    def __call__(self) -> UnitOfWork: ...


class Database(Protocol):
    """The service's database: transactions, schema migrations, health."""

    def unit_of_work(self) -> UnitOfWork: ...

    async def migrate(self) -> None:
        """Bring the schema to the newest migration."""
        ...

    async def prepare(self, settings: ServiceSettings, log: logging.Logger) -> None:
        """At start-up: migrate, or outside local mode refuse a schema behind the newest
        (`services.kit.store.SqlStore.prepare`)."""
        ...

    async def ping(self) -> bool:
        """Whether the database answers now."""
        ...

    async def prune(self, processed_event_retention: timedelta, now: datetime) -> Mapping[str, int]:
        """Delete the processed-event records older than the retention; how many, per table."""
        ...


class EmailSender(Protocol):
    """Hands emails to a mail server."""

    async def send(self, email: OutgoingEmail) -> None:
        """Return once the server has accepted the message; `EmailDeliveryError` otherwise."""
        ...

    async def ping(self) -> bool:
        """Whether the mail server can be reached now."""
        ...


class EmailComposer(Protocol):
    """Renders the email for one notification (plain text and HTML)."""

    def compose(
        self,
        kind: NotificationType,
        *,
        to: str,
        link: str,
        expires_at: datetime,
        reference: str,
    ) -> OutgoingEmail: ...


class RoleDirectory(Protocol):
    """Tells a user's current roles, authoritatively."""

    async def roles(self, user_id: str) -> frozenset[str]:
        """The user's roles (none for an unknown user); `RolesUnavailableError` if they
        cannot be had now."""
        ...

    def evict(self, user_id: str) -> None:
        """Drop any cached answer about the user, whose account has just changed."""
        ...
