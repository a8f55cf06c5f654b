"""The consumers of the receive operations of `contracts/asyncapi/notification-service.yaml`:
`NotificationReceiver` implements the generated `Receiver` (one handler per message received,
so mypy names a message the service does not handle), and each event becomes a command for a
handler. The routing table is the generated `subscriptions` table, every entry wrapped for the
kit's consumer.

The verification and reset events send an email; a deactivation erases the user's address from
the log. A handler that raises leaves the message for redelivery with backoff, and after
the queue's max receives the kit moves it to the dead-letter queue with the reason: no event is
dropped.
"""

from __future__ import annotations

from typing import Final

from generated.events import catalog
from generated.events import models as events
from generated.notification.events import Receiver, subscriptions
from services.kit.bus import EventConsumer
from services.kit.consumer import Routes, subscribe_routes
from services.kit.idempotency import self_recording_routes
from services.notification import handlers
from services.notification.domain import (
    ForgetUser,
    NotificationType,
    Outcome,
    SendNotification,
)
from services.notification.ports import RoleDirectory

# The event types received, as the harness and the tests name them (the catalog's constants).
VERIFICATION_REQUESTED: Final = catalog.EMAIL_VERIFICATION_REQUESTED
RESET_REQUESTED: Final = catalog.PASSWORD_RESET_REQUESTED
DEACTIVATED: Final = catalog.USER_DEACTIVATED


class NotificationReceiver(Receiver):
    """The notification service's handler of each message it receives: true if the event had
    its effect now, false for a duplicate. `roles` (when given) forgets a deactivated user's
    cached roles at once."""

    def __init__(self, deps: handlers.Dependencies, roles: RoleDirectory | None = None) -> None:
        self._deps = deps
        self._roles = roles

    async def on_email_verification_requested(
        self, event: events.EmailVerificationRequestedPayload
    ) -> bool:
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
            self._deps,
        )
        return outcome is not Outcome.DUPLICATE

    async def on_password_reset_requested(
        self, event: events.PasswordResetRequestedPayload
    ) -> bool:
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
            self._deps,
        )
        return outcome is not Outcome.DUPLICATE

    async def on_user_deactivated(self, event: events.UserDeactivatedPayload) -> bool:
        # Sequence-checked against the email events: a deactivation wins over older ones.
        outcome = await handlers.forget_user(
            ForgetUser(
                event_id=event.eventId,
                event_type=event.eventType,
                user_id=event.userId,
                sequence=event.sequence,
                deactivated_at=event.timestamp,
            ),
            self._deps,
        )
        if self._roles is not None:
            # A deactivated admin is refused now, not when the cached roles expire.
            self._roles.evict(str(event.userId))
        return outcome is not Outcome.DUPLICATE


def event_handlers(deps: handlers.Dependencies, roles: RoleDirectory | None = None) -> Routes:
    """The routing table of the notification service: each event type it receives → its
    handler, every one a `SelfRecordingHandler` (the handlers write the processed-event
    record themselves, in the transaction that settles the event)."""
    # Not `IdempotentHandler`: an email cannot be sent inside the transaction of its record.
    return self_recording_routes(subscriptions(NotificationReceiver(deps, roles)))


def subscribe(
    consumer: EventConsumer, deps: handlers.Dependencies, roles: RoleDirectory | None = None
) -> None:
    """Attach the notification service's routing table (`event_handlers`) to `consumer`."""
    subscribe_routes(consumer, event_handlers(deps, roles))
