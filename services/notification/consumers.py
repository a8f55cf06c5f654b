"""The consumers of the `receiveUserEvents` operation of
`contracts/asyncapi/notification-service.yaml`: each event becomes a command for a handler.

`user.email.verification.requested` and `user.password.reset.requested` send an email;
`user.deactivated` erases the user's address from the log. A handler that raises leaves the
message for redelivery with backoff, and after the queue's max receives the kit moves it to
the dead-letter queue with the reason: no event is dropped.
"""

from __future__ import annotations

from typing import Final

from generated.events import models as events
from services.kit.bus import EventConsumer
from services.kit.consumer import Routes, event_type, subscribe_routes
from services.kit.events import Event
from services.kit.idempotency import self_recording_routes
from services.notification import handlers
from services.notification.domain import (
    ForgetUser,
    NotificationType,
    Outcome,
    SendNotification,
)
from services.notification.ports import RoleDirectory

VERIFICATION_REQUESTED: Final = event_type(events.EmailVerificationRequestedPayload)
RESET_REQUESTED: Final = event_type(events.PasswordResetRequestedPayload)
DEACTIVATED: Final = event_type(events.UserDeactivatedPayload)


def event_handlers(deps: handlers.Dependencies, roles: RoleDirectory | None = None) -> Routes:
    """The routing table of the notification service: each event type it receives → its
    handler, every one a `SelfRecordingHandler` (the handlers write the processed-event
    record themselves, in the transaction that settles the event)."""

    async def on_verification_requested(event: Event) -> bool:
        assert isinstance(event, events.EmailVerificationRequestedPayload)
        outcome = await handlers.send_notification(
            SendNotification(
                event_id=event.eventId,
                event_type=event.eventType,
                user_id=event.userId,
                sequence=event.sequence,
                kind=NotificationType.EMAIL_VERIFICATION,
                email=str(event.email),
                token=event.verificationToken,
                expires_at=event.expiresAt,
            ),
            deps,
        )
        return outcome is not Outcome.DUPLICATE

    async def on_reset_requested(event: Event) -> bool:
        assert isinstance(event, events.PasswordResetRequestedPayload)
        outcome = await handlers.send_notification(
            SendNotification(
                event_id=event.eventId,
                event_type=event.eventType,
                user_id=event.userId,
                sequence=event.sequence,
                kind=NotificationType.PASSWORD_RESET,
                email=str(event.email),
                token=event.resetToken,
                expires_at=event.expiresAt,
            ),
            deps,
        )
        return outcome is not Outcome.DUPLICATE

    async def on_deactivated(event: Event) -> bool:
        assert isinstance(event, events.UserDeactivatedPayload)
        outcome = await handlers.forget_user(
            ForgetUser(
                event_id=event.eventId,
                event_type=event.eventType,
                user_id=event.userId,
                sequence=event.sequence,
                deactivated_at=event.timestamp,
            ),
            deps,
        )
        if roles is not None:  # a deactivated admin is refused now, not when the cache expires
            roles.evict(str(event.userId))
        return outcome is not Outcome.DUPLICATE

    # Not `IdempotentHandler`: an email cannot be sent inside the transaction of its record.
    return self_recording_routes(
        {
            VERIFICATION_REQUESTED: on_verification_requested,
            RESET_REQUESTED: on_reset_requested,
            # Sequence-checked against the email events: a deactivation wins over older ones.
            DEACTIVATED: on_deactivated,
        }
    )


def subscribe(
    consumer: EventConsumer, deps: handlers.Dependencies, roles: RoleDirectory | None = None
) -> None:
    """Attach the notification service's routing table (`event_handlers`) to `consumer`."""
    subscribe_routes(consumer, event_handlers(deps, roles))
