"""The consumers of the `receiveUserEvents` operation of
`contracts/asyncapi/notification-service.yaml`: each event becomes a command for a handler.

`user.email.verification.requested` and `user.password.reset.requested` send an email;
`user.deactivated` erases the user's address from the log. A handler that raises leaves the
message for redelivery with backoff, and after the queue's max receives the kit moves it to
the dead-letter queue with the reason: no event is dropped.
"""

from __future__ import annotations

from generated.events import models as events
from services.kit.bus import Delivery, EventConsumer
from services.kit.events import Event
from services.notification import handlers
from services.notification.domain import ForgetUser, NotificationType, SendNotification
from services.notification.ports import RoleDirectory

VERIFICATION_REQUESTED = "user.email.verification.requested"
RESET_REQUESTED = "user.password.reset.requested"
DEACTIVATED = "user.deactivated"


def subscribe(
    consumer: EventConsumer, deps: handlers.Dependencies, roles: RoleDirectory | None = None
) -> None:
    """Attach the notification handlers to `consumer`."""

    async def on_verification_requested(event: Event, delivery: Delivery) -> None:
        assert isinstance(event, events.EmailVerificationRequestedPayload)
        await handlers.send_notification(
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

    async def on_reset_requested(event: Event, delivery: Delivery) -> None:
        assert isinstance(event, events.PasswordResetRequestedPayload)
        await handlers.send_notification(
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

    async def on_deactivated(event: Event, delivery: Delivery) -> None:
        assert isinstance(event, events.UserDeactivatedPayload)
        await handlers.forget_user(
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

    consumer.subscribe(VERIFICATION_REQUESTED, on_verification_requested)
    consumer.subscribe(RESET_REQUESTED, on_reset_requested)
    consumer.subscribe(DEACTIVATED, on_deactivated)
