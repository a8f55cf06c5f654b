"""The auth service's domain events as the payloads of `contracts/asyncapi/user-events.yaml`,
sent through the send operations of `contracts/asyncapi/auth-service.yaml`
(`generated.auth.events.Publisher`: one method per message). Event types are named through
the generated catalog, never written here."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Final, Literal, assert_never

from generated.auth.events import Publisher, SentEvent
from generated.events import models as events
from generated.events.catalog import (
    EMAIL_VERIFICATION_REQUESTED,
    MESSAGES,
    PASSWORD_RESET_REQUESTED,
    USER_CREATED,
    USER_DEACTIVATED,
)
from services.auth.domain import (
    DomainEvent,
    EmailVerificationRequested,
    PasswordResetRequested,
    UserCreated,
    UserDeactivated,
)

SOURCE: Final[Literal["auth-service"]] = "auth-service"


def payload(event: DomainEvent, *, sequence: int, at: datetime) -> SentEvent:
    """The contract's payload for `event`, with a new `eventId`, the user's `sequence`, and the
    schema version the catalog gives its message."""
    event_id = uuid.uuid4()
    match event:
        case UserCreated():
            return events.UserCreatedPayload(
                eventId=event_id,
                eventType=USER_CREATED,
                schemaVersion=MESSAGES[USER_CREATED].schema_version,
                sequence=sequence,
                userId=event.user_id,
                email=event.email,
                timestamp=at,
                source=SOURCE,
            )
        case EmailVerificationRequested():
            return events.EmailVerificationRequestedPayload(
                eventId=event_id,
                eventType=EMAIL_VERIFICATION_REQUESTED,
                schemaVersion=MESSAGES[EMAIL_VERIFICATION_REQUESTED].schema_version,
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
                eventType=PASSWORD_RESET_REQUESTED,
                schemaVersion=MESSAGES[PASSWORD_RESET_REQUESTED].schema_version,
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
                eventType=USER_DEACTIVATED,
                schemaVersion=MESSAGES[USER_DEACTIVATED].schema_version,
                sequence=sequence,
                userId=event.user_id,
                email=event.email,
                timestamp=at,
                source=SOURCE,
            )


async def publish(publisher: Publisher, event: DomainEvent, *, sequence: int, at: datetime) -> None:
    """Send `event` through the contract's send operation for its message."""
    sent = payload(event, sequence=sequence, at=at)
    match sent:
        case events.UserCreatedPayload():
            await publisher.user_created(sent)
        case events.EmailVerificationRequestedPayload():
            await publisher.email_verification_requested(sent)
        case events.PasswordResetRequestedPayload():
            await publisher.password_reset_requested(sent)
        case events.UserDeactivatedPayload():
            await publisher.user_deactivated(sent)
        case _:
            assert_never(sent)
