"""The auth service's domain events as the payloads of `contracts/asyncapi/user-events.yaml`
(the send operations of `contracts/asyncapi/auth-service.yaml`)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Final, Literal

from generated.events import models as events
from generated.events.catalog import MESSAGES, Event
from services.auth.domain import (
    DomainEvent,
    EmailVerificationRequested,
    PasswordResetRequested,
    UserCreated,
    UserDeactivated,
)

SOURCE: Final[Literal["auth-service"]] = "auth-service"


def payload(event: DomainEvent, *, sequence: int, at: datetime) -> Event:
    """The contract's payload for `event`, with a new `eventId`, the user's `sequence`, and the
    schema version the catalog gives its message."""
    event_id = uuid.uuid4()
    match event:
        case UserCreated():
            return events.UserCreatedPayload(
                eventId=event_id,
                eventType="user.created",
                schemaVersion=MESSAGES["user.created"].schema_version,
                sequence=sequence,
                userId=event.user_id,
                email=event.email,
                timestamp=at,
                source=SOURCE,
            )
        case EmailVerificationRequested():
            return events.EmailVerificationRequestedPayload(
                eventId=event_id,
                eventType="user.email.verification.requested",
                schemaVersion=MESSAGES["user.email.verification.requested"].schema_version,
                sequence=sequence,
                userId=event.user_id,
                email=event.email,
                verificationToken=event.token,
                expiresAt=event.expires_at,
                timestamp=at,
                source=SOURCE,
            )
        case PasswordResetRequested():
            return events.PasswordResetRequestedPayload(
                eventId=event_id,
                eventType="user.password.reset.requested",
                schemaVersion=MESSAGES["user.password.reset.requested"].schema_version,
                sequence=sequence,
                userId=event.user_id,
                email=event.email,
                resetToken=event.token,
                expiresAt=event.expires_at,
                timestamp=at,
                source=SOURCE,
            )
        case UserDeactivated():
            return events.UserDeactivatedPayload(
                eventId=event_id,
                eventType="user.deactivated",
                schemaVersion=MESSAGES["user.deactivated"].schema_version,
                sequence=sequence,
                userId=event.user_id,
                email=event.email,
                timestamp=at,
                source=SOURCE,
            )
