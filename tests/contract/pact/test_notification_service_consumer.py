"""The pact the notification service holds the auth service to
(`pacts/notification-service-auth-service.json`): the three events its queue receives
(`contracts/asyncapi/notification-service.yaml`). Each message of the pact goes through the
topic to a queue subscribed as the contract says, and the real consumer and handlers take it
from there: an email with the token's link, or the user's tombstone."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Final

import pytest
from anyio.from_thread import BlockingPortal
from pact import Pact
from sqlalchemy import select

from generated.events import models as events
from services.kit.events import Message, decode
from services.kit.topology import Topology
from services.notification import consumers, handlers
from services.notification.domain import NotificationType, action_link
from services.notification.mail import RecordingEmailSender
from services.notification.rendering import JinjaEmailComposer
from services.notification.storage import SqlNotificationDatabase, users
from tests.contract.pact import examples
from tests.contract.pact.support import (
    AUTH_SERVICE,
    NOTIFICATION_SERVICE,
    RecordProperty,
    assert_handled,
    check_committed,
    pact_between,
    pact_file_name,
    sns_message,
    subscribed,
)

pytestmark = [pytest.mark.contract, pytest.mark.conformance("notification", "pacts")]

QUEUE: Final = "accord-notification-service"
LINK_BASE: Final = "https://accounts.accord.test"


def message_pact() -> Pact:
    """The events the notification service's queue receives from the auth service."""
    pact = pact_between(NOTIFICATION_SERVICE, AUTH_SERVICE)
    examples.email_verification_requested(pact)
    examples.password_reset_requested(pact)
    examples.user_deactivated(pact)
    return pact


def clock_from(start: datetime) -> Callable[[], datetime]:
    """Time running from `start`: the consumer receives the pact's event as it happens, so an
    example's expiry stays in the future whatever day the suite runs."""
    began = time.monotonic()
    return lambda: start + timedelta(seconds=time.monotonic() - began)


async def _receive(directory: Path, topology: Topology, message: Message) -> None:
    """Put the message on a fresh notification service's queue, then check what its handler
    did."""
    event = decode(message)
    database = SqlNotificationDatabase(f"sqlite:///{directory / f'n-{uuid.uuid4().hex}.db'}")
    await database.migrate()
    sender = RecordingEmailSender()
    deps = handlers.Dependencies(
        unit_of_work=database.unit_of_work,
        sender=sender,
        composer=JinjaEmailComposer(),
        clock=clock_from(event.timestamp),
        link_base_url=LINK_BASE,
        claim_lease=timedelta(seconds=30),
    )
    try:
        async with subscribed(topology, QUEUE, partial(consumers.subscribe, deps=deps)) as queue:
            await queue.deliver(message)
        async with database.sessions() as session:
            tombstone = (
                await session.execute(
                    select(users.c.deactivated_sequence).where(users.c.id == event.userId)
                )
            ).scalar_one_or_none()
    finally:
        await database.dispose()
    match event:
        case events.EmailVerificationRequestedPayload():
            link = action_link(
                LINK_BASE, NotificationType.EMAIL_VERIFICATION, event.verificationToken
            )
        case events.PasswordResetRequestedPayload():
            link = action_link(LINK_BASE, NotificationType.PASSWORD_RESET, event.resetToken)
        case events.UserDeactivatedPayload():
            assert sender.sent == []
            assert tombstone == event.sequence
            return
        case _:
            raise AssertionError(f"the notification service receives no {event.eventType} events")
    assert [email.to for email in sender.sent] == [str(event.email)]
    assert link in sender.sent[0].text
    assert tombstone is None


def test_the_notification_service_handles_every_event_it_holds_the_auth_service_to(
    portal: BlockingPortal, tmp_path: Path, topology: Topology, record_property: RecordProperty
) -> None:
    pact = message_pact()

    def handle(body: str | bytes | None, metadata: dict[str, object]) -> None:
        portal.call(partial(_receive, tmp_path, topology, sns_message(body, metadata)))

    handled = assert_handled(pact, handle)

    record_property("cases", handled)


def test_the_committed_notification_service_pact_is_what_these_tests_define(
    tmp_path: Path,
) -> None:
    message_pact().write_file(tmp_path, overwrite=True)

    check_committed(tmp_path / pact_file_name(NOTIFICATION_SERVICE, AUTH_SERVICE))
