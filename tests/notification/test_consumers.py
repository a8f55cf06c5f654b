"""The consumers end to end: events on the in-memory bus, the service with its database, and a
real SMTP server receiving the emails."""

from __future__ import annotations

import asyncio
import uuid
from contextlib import AbstractAsyncContextManager
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import select

from services.kit.events import DEAD_LETTER_REASON
from services.kit.memory import InMemoryBroker
from services.notification.domain import OutgoingEmail
from services.notification.mail import SmtpConfig, SmtpEmailSender
from services.notification.settings import Settings
from services.notification.storage import notifications, processed_events
from tests.notification.support import (
    LINK_BASE,
    MailServer,
    Service,
    Tokens,
    deactivated,
    eventually,
    memory_topology,
    reset_requested,
    running_service,
    settings_for,
    verification_requested,
)

FROM = "Accord <no-reply@accord.test>"


def smtp_sender(server: MailServer) -> SmtpEmailSender:
    return SmtpEmailSender(SmtpConfig("127.0.0.1", server.port, "none", FROM, timeout=2.0))


def serve(
    settings: Settings, server: MailServer, tokens: Tokens, broker: InMemoryBroker, prefix: str
) -> AbstractAsyncContextManager[Service]:
    """The service sending through `server`, consuming from `broker`."""
    return running_service(
        settings, sender=smtp_sender(server), tokens=tokens, broker=broker, prefix=prefix
    )


class CountingSender(SmtpEmailSender):
    """The SMTP sender, counting its attempts."""

    def __init__(self, server: MailServer) -> None:
        super().__init__(SmtpConfig("127.0.0.1", server.port, "none", FROM, timeout=2.0))
        self.attempts = 0

    async def send(self, email: OutgoingEmail) -> None:
        self.attempts += 1
        await super().send(email)


async def rows(service: Service) -> list[dict[str, object]]:
    async with service.database.sessions() as session:
        result = await session.execute(select(notifications).order_by(notifications.c.sequence))
        return [dict(row._mapping) for row in result]


async def settle(service: Service) -> None:
    """Wait until the queue is empty (every message handled and deleted)."""
    await eventually(lambda: service.queue_depth() == 0)


async def test_a_verification_event_sends_one_email_with_text_and_html_and_the_link(
    database_url: str,
    mail_server: MailServer,
    tokens: Tokens,
    broker: InMemoryBroker,
    unique_prefix: str,
) -> None:
    settings = settings_for(database_url, mail_server.port, from_address=FROM)
    event = verification_requested(email="ada@example.com", token="vt_S3cr3t-token_value")
    async with serve(settings, mail_server, tokens, broker, unique_prefix) as service:
        await service.publish(event)
        await eventually(lambda: len(mail_server.messages) == 1)
        await settle(service)
        log = await rows(service)

    mail = mail_server.messages[0]
    assert mail.recipients == ["ada@example.com"]
    assert mail.message["Subject"] == "Verify your Accord email address"
    assert mail.message["Message-ID"] == f"<{event.eventId}@accord.test>"
    assert mail.message.get_content_type() == "multipart/alternative"
    link = f"{LINK_BASE}/verify-email?token=vt_S3cr3t-token_value"
    assert link in mail.part("plain")
    assert f'href="{link}"' in mail.part("html")
    assert [(r["status"], r["recipient"], r["reason"]) for r in log] == [
        ("sent", "ada@example.com", None)
    ]
    assert log[0]["sent_at"] is not None


async def test_a_reset_event_sends_the_reset_link(
    sqlite_url: str,
    mail_server: MailServer,
    tokens: Tokens,
    broker: InMemoryBroker,
    unique_prefix: str,
) -> None:
    settings = settings_for(sqlite_url, mail_server.port)
    event = reset_requested(email="grace@example.com", token="rt_reset+token/with=odd&chars")
    async with serve(settings, mail_server, tokens, broker, unique_prefix) as service:
        await service.publish(event)
        await eventually(lambda: len(mail_server.messages) == 1)

    mail = mail_server.messages[0]
    assert mail.message["Subject"] == "Reset your Accord password"
    text = mail.part("plain")
    link = next(line for line in text.splitlines() if line.startswith(LINK_BASE))
    parts = urlsplit(link)
    assert parts.path == "/reset-password"
    assert parse_qs(parts.query) == {"token": ["rt_reset+token/with=odd&chars"]}
    # In HTML the same link appears with its `&` escaped, never as raw markup.
    assert link.replace("&", "&amp;") in mail.part("html")


async def test_a_duplicate_event_sends_no_second_email(
    database_url: str,
    mail_server: MailServer,
    tokens: Tokens,
    broker: InMemoryBroker,
    unique_prefix: str,
) -> None:
    settings = settings_for(database_url, mail_server.port)
    event = verification_requested()
    async with serve(settings, mail_server, tokens, broker, unique_prefix) as service:
        await service.publish(event)
        await eventually(lambda: len(mail_server.messages) == 1)
        await settle(service)
        service.send_to_queue(event)  # redelivered later, e.g. after a lost delete
        await settle(service)
        # and twice more at the same moment, as two receivers could get it
        service.send_to_queue(event)
        service.send_to_queue(event)
        await settle(service)
        log = await rows(service)

    assert len(mail_server.messages) == 1
    assert len(log) == 1
    assert broker.dead_letters(service.queue) == []


async def test_concurrent_copies_of_one_event_send_one_email(
    database_url: str,
    mail_server: MailServer,
    tokens: Tokens,
    broker: InMemoryBroker,
    unique_prefix: str,
) -> None:
    settings = settings_for(database_url, mail_server.port)
    events = [verification_requested() for _ in range(5)]
    async with serve(settings, mail_server, tokens, broker, unique_prefix) as service:
        for event in events:
            for _ in range(3):
                service.send_to_queue(event)
        await settle(service)

    sent = sorted(str(mail.message["Message-ID"]) for mail in mail_server.messages)
    assert sent == sorted(f"<{event.eventId}@accord.test>" for event in events)
    assert broker.dead_letters(service.queue) == []


async def test_an_expired_event_is_logged_as_skipped_and_not_sent(
    database_url: str,
    mail_server: MailServer,
    tokens: Tokens,
    broker: InMemoryBroker,
    unique_prefix: str,
) -> None:
    settings = settings_for(database_url, mail_server.port)
    expired = reset_requested(expires_in=timedelta(seconds=-1))
    fresh = verification_requested()
    async with serve(settings, mail_server, tokens, broker, unique_prefix) as service:
        await service.publish(expired)
        await service.publish(fresh)
        await eventually(lambda: len(mail_server.messages) == 1)
        await settle(service)
        log = {r["event_id"]: r for r in await rows(service)}

    assert mail_server.messages[0].message["Message-ID"].startswith(f"<{fresh.eventId}@")
    skipped = log[expired.eventId]
    assert (skipped["status"], skipped["reason"], skipped["sent_at"]) == (
        "skipped",
        "expired",
        None,
    )
    assert skipped["recipient"] == "ada@example.com"


async def test_while_smtp_is_down_the_event_is_retried_and_sent_once_it_is_back(
    database_url: str,
    mail_server: MailServer,
    tokens: Tokens,
    unique_prefix: str,
) -> None:
    # Retries come at once (backoff base 0), so the queue allows many receives: this test is
    # about waiting for the server, the next one about running out of receives.
    broker = InMemoryBroker()
    broker.apply(memory_topology(unique_prefix, max_receives=10_000))
    settings = settings_for(database_url, mail_server.port)
    event = verification_requested()
    sender = CountingSender(mail_server)
    mail_server.stop()
    async with running_service(
        settings, sender=sender, tokens=tokens, broker=broker, prefix=unique_prefix
    ) as service:
        await service.publish(event)
        await eventually(lambda: sender.attempts >= 3)
        assert mail_server.messages == []
        mail_server.start()
        await eventually(lambda: len(mail_server.messages) == 1)
        await settle(service)
        await asyncio.sleep(0.2)  # room for a wrong second send to show up
        log = await rows(service)
        async with service.database.sessions() as session:
            processed = (await session.execute(select(processed_events))).all()

    assert len(mail_server.messages) == 1
    assert [(r["status"], r["claim_token"]) for r in log] == [("sent", None)]
    assert int(str(log[0]["attempts"])) >= 3
    assert [p.event_id for p in processed] == [event.eventId]
    assert broker.dead_letters(service.queue) == []


async def test_after_the_last_receive_the_event_is_dead_lettered_with_the_reason(
    sqlite_url: str,
    mail_server: MailServer,
    tokens: Tokens,
    broker: InMemoryBroker,
    unique_prefix: str,
) -> None:
    settings = settings_for(sqlite_url, mail_server.port)
    event = verification_requested()
    mail_server.stop()
    async with serve(settings, mail_server, tokens, broker, unique_prefix) as service:
        await service.publish(event)
        await eventually(lambda: len(broker.dead_letters(service.queue)) == 1)
        await settle(service)
        log = await rows(service)

    [letter] = broker.dead_letters(service.queue)
    assert str(event.eventId) in letter.message.body
    assert letter.reason is not None
    assert letter.reason.startswith("handler failed on receive 5: EmailDeliveryError")
    assert letter.message.attributes[DEAD_LETTER_REASON] == letter.reason
    # Nothing was sent and nothing is listed; a redrive sends it once SMTP is back.
    assert [(r["status"], r["claim_token"]) for r in log] == [("sending", None)]

    mail_server.start()
    async with serve(settings, mail_server, tokens, broker, unique_prefix) as service:
        assert broker.redrive(service.queue) == 1
        await eventually(lambda: len(mail_server.messages) == 1)
        await settle(service)
    assert mail_server.messages[0].message["Message-ID"].startswith(f"<{event.eventId}@")


async def test_deactivation_erases_the_users_addresses_and_suppresses_older_emails(
    database_url: str,
    mail_server: MailServer,
    tokens: Tokens,
    broker: InMemoryBroker,
    unique_prefix: str,
) -> None:
    settings = settings_for(database_url, mail_server.port)
    user, other = uuid.uuid4(), uuid.uuid4()
    sent_before = verification_requested(user, sequence=2, email="ada@example.com")
    others = verification_requested(other, sequence=2, email="grace@example.com")
    deactivation = deactivated(user, sequence=6)
    # Published before the deactivation, delivered after it (e.g. retried, or reordered).
    late = reset_requested(user, sequence=4, email="ada@example.com")
    async with serve(settings, mail_server, tokens, broker, unique_prefix) as service:
        await service.publish(sent_before)
        await service.publish(others)
        await eventually(lambda: len(mail_server.messages) == 2)
        await settle(service)
        await service.publish(deactivation)
        await settle(service)
        await service.publish(late)
        await service.publish(deactivation)  # a duplicate deactivation changes nothing
        await settle(service)
        await asyncio.sleep(0.1)
        log = {r["event_id"]: r for r in await rows(service)}

    assert len(mail_server.messages) == 2
    assert log[sent_before.eventId]["recipient"] is None
    assert log[sent_before.eventId]["status"] == "sent"
    assert log[others.eventId]["recipient"] == "grace@example.com"
    suppressed = log[late.eventId]
    assert (suppressed["status"], suppressed["reason"], suppressed["recipient"]) == (
        "skipped",
        "deactivated",
        None,
    )


@pytest.mark.parametrize("order", ["deactivation first", "email first"])
async def test_deactivation_and_an_older_email_end_the_same_in_either_order(
    order: str,
    sqlite_url: str,
    mail_server: MailServer,
    tokens: Tokens,
    broker: InMemoryBroker,
    unique_prefix: str,
) -> None:
    settings = settings_for(sqlite_url, mail_server.port)
    user = uuid.uuid4()
    email_event = verification_requested(user, sequence=2)
    deactivation = deactivated(user, sequence=3)
    first, second = (
        (deactivation, email_event)
        if order == "deactivation first"
        else (email_event, deactivation)
    )
    async with serve(settings, mail_server, tokens, broker, unique_prefix) as service:
        await service.publish(first)
        await settle(service)
        await service.publish(second)
        await settle(service)
        log = await rows(service)

    # Sent or not depends on when it arrived; the address is gone either way.
    assert [r["recipient"] for r in log] == [None]
    expected = 0 if order == "deactivation first" else 1
    assert len(mail_server.messages) == expected


async def test_an_email_newer_than_the_deactivation_is_still_sent(
    sqlite_url: str,
    mail_server: MailServer,
    tokens: Tokens,
    broker: InMemoryBroker,
    unique_prefix: str,
) -> None:
    settings = settings_for(sqlite_url, mail_server.port)
    user = uuid.uuid4()
    async with serve(settings, mail_server, tokens, broker, unique_prefix) as service:
        await service.publish(deactivated(user, sequence=3))
        await settle(service)
        await service.publish(reset_requested(user, sequence=7, email="ada@example.com"))
        await eventually(lambda: len(mail_server.messages) == 1)
        await settle(service)
        log = await rows(service)

    assert [(r["status"], r["recipient"]) for r in log] == [("sent", "ada@example.com")]
