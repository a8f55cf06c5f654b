"""The handlers on their own, with a recording sender: the claim protocol around the SMTP send
(what a crash, a concurrent worker or a failed send leaves behind) and the tombstones."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import delete, select, update

from services.notification import handlers
from services.notification.domain import (
    DeliveryInProgressError,
    EmailDeliveryError,
    ForgetUser,
    NotificationType,
    Outcome,
    OutgoingEmail,
    SendNotification,
)
from services.notification.mail import RecordingEmailSender
from services.notification.rendering import JinjaEmailComposer
from services.notification.storage import (
    SqlNotificationDatabase,
    notifications,
    processed_events,
    users,
)
from tests.notification.support import LINK_BASE

LEASE = timedelta(milliseconds=300)


@pytest.fixture
async def database(database_url: str) -> AsyncIterator[SqlNotificationDatabase]:
    database = SqlNotificationDatabase(database_url)
    await database.migrate()
    yield database
    await database.dispose()


@pytest.fixture
def sender() -> RecordingEmailSender:
    return RecordingEmailSender()


@pytest.fixture
def deps(database: SqlNotificationDatabase, sender: RecordingEmailSender) -> handlers.Dependencies:
    return handlers.Dependencies(
        unit_of_work=database.unit_of_work,
        sender=sender,
        composer=JinjaEmailComposer(),
        clock=lambda: datetime.now(UTC),
        link_base_url=LINK_BASE,
        claim_lease=LEASE,
        busy_poll=timedelta(milliseconds=20),
    )


def send_command(
    user_id: uuid.UUID | None = None,
    sequence: int = 2,
    expires_in: timedelta = timedelta(hours=1),
) -> SendNotification:
    return SendNotification(
        event_id=uuid.uuid4(),
        event_type="user.email.verification.requested",
        user_id=user_id or uuid.uuid4(),
        sequence=sequence,
        kind=NotificationType.EMAIL_VERIFICATION,
        email="ada@example.com",
        token="vt_" + uuid.uuid4().hex,
        expires_at=datetime.now(UTC) + expires_in,
    )


def forget_command(user_id: uuid.UUID, sequence: int) -> ForgetUser:
    return ForgetUser(
        event_id=uuid.uuid4(),
        event_type="user.deactivated",
        user_id=user_id,
        sequence=sequence,
        deactivated_at=datetime.now(UTC),
    )


async def entry(database: SqlNotificationDatabase, event_id: uuid.UUID) -> dict[str, object]:
    async with database.sessions() as session:
        row = (
            await session.execute(select(notifications).where(notifications.c.event_id == event_id))
        ).one()
    return dict(row._mapping)


async def test_a_crash_after_the_server_accepted_the_email_sends_it_again_with_the_same_id(
    database: SqlNotificationDatabase, deps: handlers.Dependencies, sender: RecordingEmailSender
) -> None:
    command = send_command()
    assert await handlers.send_notification(command, deps) is Outcome.SENT
    # What a crash between the SMTP server's "250 OK" and the commit leaves: the entry still
    # claimed by the dead worker, and no processed record.
    async with database.sessions() as session, session.begin():
        await session.execute(
            update(notifications)
            .where(notifications.c.event_id == command.event_id)
            .values(status="sending", sent_at=None, claim_token=uuid.uuid4(),
                    claimed_until=datetime.now(UTC) + LEASE)
        )  # fmt: skip
        await session.execute(delete(processed_events))

    # The redelivery waits out the dead worker's lease, then sends once more.
    assert await handlers.send_notification(command, deps) is Outcome.SENT
    assert await handlers.send_notification(command, deps) is Outcome.DUPLICATE

    assert [email.reference for email in sender.sent] == [str(command.event_id)] * 2
    row = await entry(database, command.event_id)
    assert (row["status"], row["attempts"], row["claim_token"]) == ("sent", 2, None)


async def test_a_failed_send_releases_the_claim_so_the_retry_sends_at_once(
    database: SqlNotificationDatabase, deps: handlers.Dependencies, sender: RecordingEmailSender
) -> None:
    command = send_command()
    sender.failure = ConnectionRefusedError("SMTP is down")
    with pytest.raises(EmailDeliveryError):
        await handlers.send_notification(command, deps)
    row = await entry(database, command.event_id)
    assert (row["status"], row["claim_token"], row["claimed_until"]) == ("sending", None, None)

    sender.failure = None
    started = asyncio.get_running_loop().time()
    assert await handlers.send_notification(command, deps) is Outcome.SENT
    assert asyncio.get_running_loop().time() - started < LEASE.total_seconds()
    assert len(sender.sent) == 1


async def test_a_duplicate_waits_for_the_worker_that_holds_the_claim(
    database: SqlNotificationDatabase, deps: handlers.Dependencies
) -> None:
    accepted = asyncio.Event()
    release = asyncio.Event()
    sent: list[OutgoingEmail] = []

    class SlowSender(RecordingEmailSender):
        async def send(self, email: OutgoingEmail) -> None:
            accepted.set()
            await release.wait()
            sent.append(email)

    slow = dataclasses.replace(deps, sender=SlowSender())
    command = send_command()
    first = asyncio.create_task(handlers.send_notification(command, slow))
    await accepted.wait()
    second = asyncio.create_task(handlers.send_notification(command, slow))
    await asyncio.sleep(0.1)
    assert not second.done()  # waiting on the live claim, not failing
    release.set()

    assert await first is Outcome.SENT
    assert await second is Outcome.DUPLICATE
    assert len(sent) == 1


async def test_a_claim_that_never_settles_is_reported_once_the_wait_is_over(
    database: SqlNotificationDatabase, deps: handlers.Dependencies
) -> None:
    command = send_command()
    never = asyncio.Event()

    class HangingSender(RecordingEmailSender):
        async def send(self, email: OutgoingEmail) -> None:
            await never.wait()

    # A lease far longer than the duplicate is willing to wait.
    holder = dataclasses.replace(deps, sender=HangingSender(), claim_lease=timedelta(hours=1))
    hanging = asyncio.create_task(handlers.send_notification(command, holder))
    await asyncio.sleep(0.1)
    with pytest.raises(DeliveryInProgressError):
        await handlers.send_notification(command, deps)
    hanging.cancel()
    with pytest.raises(asyncio.CancelledError):
        await hanging
    # Cancelled mid-send (the process stopping): the claim is given back.
    row = await entry(database, command.event_id)
    assert (row["status"], row["claim_token"]) == ("sending", None)


async def test_a_token_that_expires_between_attempts_turns_the_entry_skipped(
    database: SqlNotificationDatabase, deps: handlers.Dependencies, sender: RecordingEmailSender
) -> None:
    command = send_command(expires_in=timedelta(milliseconds=300))
    sender.failure = ConnectionRefusedError("SMTP is down")
    with pytest.raises(EmailDeliveryError):
        await handlers.send_notification(command, deps)
    sender.failure = None
    await asyncio.sleep(0.35)

    assert await handlers.send_notification(command, deps) is Outcome.SKIPPED
    assert sender.sent == []
    row = await entry(database, command.event_id)
    assert (row["status"], row["reason"]) == ("skipped", "expired")


async def test_an_older_deactivation_never_lowers_the_tombstone(
    database: SqlNotificationDatabase, deps: handlers.Dependencies, sender: RecordingEmailSender
) -> None:
    user = uuid.uuid4()
    assert await handlers.forget_user(forget_command(user, 9), deps) is Outcome.ERASED
    assert await handlers.forget_user(forget_command(user, 4), deps) is Outcome.ERASED
    async with database.sessions() as session:
        tombstone = (await session.execute(select(users).where(users.c.id == user))).one()
    assert tombstone.deactivated_sequence == 9

    assert await handlers.send_notification(send_command(user, sequence=6), deps) is (
        Outcome.SKIPPED
    )
    assert sender.sent == []


async def test_a_redelivered_deactivation_is_absorbed(deps: handlers.Dependencies) -> None:
    command = forget_command(uuid.uuid4(), 3)
    assert await handlers.forget_user(command, deps) is Outcome.ERASED
    assert await handlers.forget_user(command, deps) is Outcome.DUPLICATE
