"""The notification handlers, and the service's routing table, against an in-memory unit of
work (`tests/notification/fakes.py`) and a recording sender: what is sent, skipped, erased
and absorbed, without a database. The claim protocol against the real storage, crashes and
concurrent workers included, is in test_handlers.py on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from services.notification import consumers, handlers
from services.notification.domain import (
    DeliveryStatus,
    EmailDeliveryError,
    ForgetUser,
    ListNotifications,
    NotificationType,
    Outcome,
    SendNotification,
)
from services.notification.mail import RecordingEmailSender
from services.notification.rendering import JinjaEmailComposer
from tests import factories
from tests.notification.fakes import FakeNotificationDatabase
from tests.notification.support import LINK_BASE, reset_requested

NOW = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
LEASE = timedelta(seconds=30)


@pytest.fixture
def database() -> FakeNotificationDatabase:
    return FakeNotificationDatabase()


@pytest.fixture
def sender() -> RecordingEmailSender:
    return RecordingEmailSender()


@pytest.fixture
def deps(database: FakeNotificationDatabase, sender: RecordingEmailSender) -> handlers.Dependencies:
    # mypy checks here that the fake satisfies `UnitOfWork` (through `UnitOfWorkFactory`).
    return handlers.Dependencies(
        unit_of_work=database.unit_of_work,
        sender=sender,
        composer=JinjaEmailComposer(),
        clock=lambda: NOW,
        link_base_url=LINK_BASE,
        claim_lease=LEASE,
        busy_poll=timedelta(0),
    )


def send_command(
    user_id: uuid.UUID | None = None, sequence: int = 2, expires_at: datetime = NOW + LEASE
) -> SendNotification:
    return SendNotification(
        event_id=uuid.uuid4(),
        event_type=consumers.VERIFICATION_REQUESTED,
        user_id=user_id or uuid.uuid4(),
        sequence=sequence,
        kind=NotificationType.EMAIL_VERIFICATION,
        email="ada@example.com",
        token="vt_" + uuid.uuid4().hex,
        expires_at=expires_at,
    )


def forget_command(user_id: uuid.UUID, sequence: int) -> ForgetUser:
    return ForgetUser(
        event_id=uuid.uuid4(),
        event_type=consumers.DEACTIVATED,
        user_id=user_id,
        sequence=sequence,
        deactivated_at=NOW,
    )


async def test_a_verification_request_sends_one_email_and_a_redelivery_sends_nothing(
    database: FakeNotificationDatabase, deps: handlers.Dependencies, sender: RecordingEmailSender
) -> None:
    command = send_command()

    assert await handlers.send_notification(command, deps) is Outcome.SENT
    assert await handlers.send_notification(command, deps) is Outcome.DUPLICATE

    [email] = sender.sent
    assert (email.to, email.reference) == ("ada@example.com", str(command.event_id))
    assert f"{LINK_BASE}/verify-email?token={command.token}" in email.text
    entry = database.entry(command.event_id)
    assert (entry.notification.status, entry.notification.sent_at) == (DeliveryStatus.SENT, NOW)
    assert database.state.processed == {command.event_id: consumers.VERIFICATION_REQUESTED}


async def test_an_expired_token_is_skipped_and_never_sent(
    database: FakeNotificationDatabase, deps: handlers.Dependencies, sender: RecordingEmailSender
) -> None:
    command = send_command(expires_at=NOW)

    assert await handlers.send_notification(command, deps) is Outcome.SKIPPED

    assert sender.sent == []
    notification = database.entry(command.event_id).notification
    assert (notification.status, notification.reason) == (DeliveryStatus.SKIPPED, "expired")
    assert command.event_id in database.state.processed


async def test_an_email_older_than_a_known_deactivation_is_skipped_without_its_address(
    database: FakeNotificationDatabase, deps: handlers.Dependencies, sender: RecordingEmailSender
) -> None:
    user_id = uuid.uuid4()
    assert await handlers.forget_user(forget_command(user_id, sequence=5), deps) is Outcome.ERASED

    command = send_command(user_id, sequence=3)
    assert await handlers.send_notification(command, deps) is Outcome.SKIPPED

    assert sender.sent == []
    notification = database.entry(command.event_id).notification
    assert (notification.reason, notification.recipient) == ("deactivated", None)


async def test_a_deactivation_erases_earlier_addresses_and_its_redelivery_is_absorbed(
    database: FakeNotificationDatabase, deps: handlers.Dependencies
) -> None:
    user_id = uuid.uuid4()
    earlier = send_command(user_id, sequence=2)
    await handlers.send_notification(earlier, deps)
    forget = forget_command(user_id, sequence=4)

    assert await handlers.forget_user(forget, deps) is Outcome.ERASED
    assert await handlers.forget_user(forget, deps) is Outcome.DUPLICATE

    assert database.entry(earlier.event_id).notification.recipient is None
    assert database.state.deactivated[user_id] == 4


async def test_a_failed_send_is_raised_and_releases_its_claim_for_the_retry(
    database: FakeNotificationDatabase, deps: handlers.Dependencies, sender: RecordingEmailSender
) -> None:
    command = send_command()
    sender.failure = ConnectionRefusedError("SMTP is down")
    with pytest.raises(EmailDeliveryError):
        await handlers.send_notification(command, deps)
    entry = database.entry(command.event_id)
    assert (entry.notification.status, entry.claim_token) == (DeliveryStatus.SENDING, None)
    assert command.event_id not in database.state.processed

    sender.failure = None
    assert await handlers.send_notification(command, deps) is Outcome.SENT  # no lease to wait
    assert len(sender.sent) == 1


async def test_only_settled_entries_are_listed_newest_first(
    database: FakeNotificationDatabase, deps: handlers.Dependencies
) -> None:
    sent, skipped = send_command(), send_command(expires_at=NOW)
    await handlers.send_notification(sent, deps)
    await handlers.send_notification(skipped, deps)

    page = await handlers.list_notifications(ListNotifications(limit=10), deps)

    assert {n.event_id for n in page.items} == {sent.event_id, skipped.event_id}
    assert page.next is None


async def test_the_routing_table_handles_each_event_type_once_per_event(
    deps: handlers.Dependencies, sender: RecordingEmailSender
) -> None:
    routes = consumers.event_handlers(deps)
    user_id = uuid.uuid4()
    requested = reset_requested(user_id, sequence=2)
    deactivated = factories.user_deactivated(user_id, sequence=3)

    assert set(routes) == {
        consumers.VERIFICATION_REQUESTED,
        consumers.RESET_REQUESTED,
        consumers.DEACTIVATED,
    }
    assert await routes[consumers.RESET_REQUESTED].apply(requested) is True
    assert await routes[consumers.RESET_REQUESTED].apply(requested) is False  # a redelivery
    assert await routes[consumers.DEACTIVATED].apply(deactivated) is True
    assert await routes[consumers.DEACTIVATED].apply(deactivated) is False
    assert [email.reference for email in sender.sent] == [str(requested.eventId)]
