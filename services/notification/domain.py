"""The notification service's domain: what it sends, what it logs, what can go wrong.
Plain Python: no framework, no database, no generated models."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Final
from urllib.parse import urlencode

CHANNEL_EMAIL: Final = "email"


class NotificationType(StrEnum):
    """What a notification is for (the contract's `NotificationType`)."""

    EMAIL_VERIFICATION = "email_verification"
    PASSWORD_RESET = "password_reset"  # noqa: S105 - a notification type, not a password


class DeliveryStatus(StrEnum):
    """Where a log entry stands. `sending` is internal: the entry is claimed by a worker that
    is handing the email to the SMTP server; only `sent` and `skipped` are ever listed."""

    SENDING = "sending"
    SENT = "sent"
    SKIPPED = "skipped"


LISTED_STATUSES: Final = (DeliveryStatus.SENT, DeliveryStatus.SKIPPED)


class SkipReason(StrEnum):
    """Why an email was deliberately not sent."""

    EXPIRED = "expired"  # the token's `expiresAt` had passed when the event was handled
    DEACTIVATED = "deactivated"  # the user was deactivated after the event was published


SUBJECTS: Final = {
    NotificationType.EMAIL_VERIFICATION: "Verify your Accord email address",
    NotificationType.PASSWORD_RESET: "Reset your Accord password",
}

# The pages the links in the emails open, under the configured base URL. The single-use
# token travels in the `token` query parameter.
LINK_PATHS: Final = {
    NotificationType.EMAIL_VERIFICATION: "/verify-email",
    NotificationType.PASSWORD_RESET: "/reset-password",
}


def action_link(base_url: str, kind: NotificationType, token: str) -> str:
    """The link an email carries: `{base}/verify-email?token=…` or
    `{base}/reset-password?token=…`, the token URL-encoded."""
    return f"{base_url.rstrip('/')}{LINK_PATHS[kind]}?{urlencode({'token': token})}"


# --- commands (imperative; what the consumers and the HTTP layer ask the handlers) --------


@dataclass(frozen=True)
class SendNotification:
    """Email a user the link for `token` (from a verification or reset event)."""

    event_id: uuid.UUID
    event_type: str
    user_id: uuid.UUID
    sequence: int
    kind: NotificationType
    email: str
    token: str
    expires_at: datetime


@dataclass(frozen=True)
class ForgetUser:
    """Erase what the log knows personally about a deactivated user (`user.deactivated`)."""

    event_id: uuid.UUID
    event_type: str
    user_id: uuid.UUID
    sequence: int
    deactivated_at: datetime


@dataclass(frozen=True)
class Position:
    """A place in the log's order (newest first: `created_at`, then `id`, descending)."""

    created_at: datetime
    id: uuid.UUID


@dataclass(frozen=True)
class ListNotifications:
    """One page of the log, optionally for one user and one type, after `after`."""

    limit: int
    user_id: uuid.UUID | None = None
    kind: NotificationType | None = None
    after: Position | None = None


# --- what the handlers produce and store ------------------------------------------------


@dataclass(frozen=True)
class OutgoingEmail:
    """One email, rendered: the plain-text and HTML alternatives of the same message.
    `reference` (the event id) names it, so a re-sent copy carries the same Message-ID."""

    to: str
    subject: str
    text: str
    html: str
    reference: str


@dataclass(frozen=True)
class NewEntry:
    """A log entry about to be written for one event."""

    id: uuid.UUID
    event_id: uuid.UUID
    user_id: uuid.UUID
    sequence: int
    kind: NotificationType
    recipient: str | None
    subject: str


@dataclass(frozen=True)
class Claim:
    """The right to send one entry's email, held by one worker until `until`."""

    event_id: uuid.UUID
    token: uuid.UUID
    until: datetime


@dataclass(frozen=True)
class Notification:
    """One entry of the notification log, as listed."""

    id: uuid.UUID
    event_id: uuid.UUID
    user_id: uuid.UUID
    kind: NotificationType
    channel: str
    status: DeliveryStatus
    recipient: str | None
    subject: str
    reason: str | None
    created_at: datetime
    sent_at: datetime | None

    @property
    def position(self) -> Position:
        return Position(self.created_at, self.id)


@dataclass(frozen=True)
class Page:
    """Some entries, and where the next page starts (None on the last page)."""

    items: list[Notification]
    next: Position | None


class Outcome(StrEnum):
    """What handling one event did."""

    SENT = "sent"
    SKIPPED = "skipped"
    ERASED = "erased"
    DUPLICATE = "duplicate"


# --- errors -------------------------------------------------------------------------------


class DeliveryInProgressError(Exception):
    """Another worker holds the claim on this event's email; try again later (the message
    is redelivered with backoff, and by then the other worker has finished or crashed)."""

    def __init__(self, event_id: uuid.UUID) -> None:
        super().__init__(f"the email for event {event_id} is being sent by another worker")
        self.event_id = event_id


class EmailDeliveryError(Exception):
    """The SMTP server could not be reached or refused the message; the event is retried."""


class RolesUnavailableError(Exception):
    """The auth service cannot confirm a user's roles right now (answer 503, not 403)."""
