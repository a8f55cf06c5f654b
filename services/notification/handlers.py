"""The notification service's use cases. They see only the ports, so the same code runs
against SQLite, PostgreSQL, a real SMTP server or a recording sender.

Sending an email is not part of any database transaction (the SMTP conversation can take
seconds, and must not hold a connection or SQLite's write lock). It happens in three steps:

1. **claim** — one short transaction writes the log entry as `sending` with a lease
   (`claimed_until`), or decides to skip it (`expired`, `deactivated`) and then records the
   entry as `skipped` together with the `(consumer, eventId)` record;
2. **send** — the email goes to the SMTP server, outside any transaction;
3. **complete** — one transaction marks the entry `sent` and adds the `(consumer, eventId)`
   record, so "sent" and "processed" commit together.

A duplicate delivery after step 3 finds the record and sends nothing; a concurrent duplicate
finds the live lease and waits (at most one lease) for the other worker to finish. If the send
fails, the claim is released and the handler raises, so the consumer retries with backoff and
finally dead-letters the message.
The one window left is a crash between the server's acceptance and step 3: the lease then
lapses, a redelivery claims the entry again and the email is sent a second time, with the
same Message-ID. Email delivery is therefore at least once (never lost, at worst duplicated
once after a crash) — no SMTP client can do better, because the server's acceptance and our
commit cannot be one atomic step.

Every transaction about a user starts by locking that user's row (`UserRegistry.lock`), so a
`user.deactivated` and an email for the same user are serialized: an email whose event is
older (lower `sequence`) than a known deactivation is skipped as `deactivated` and its address
is never stored, whichever arrives first.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from services.notification.domain import (
    SUBJECTS,
    Claim,
    DeliveryInProgressError,
    ForgetUser,
    ListNotifications,
    NewEntry,
    Outcome,
    Page,
    SendNotification,
    SkipReason,
    action_link,
)
from services.notification.ports import EmailComposer, EmailSender, UnitOfWorkFactory

log = logging.getLogger("accord.notification")


@dataclass(frozen=True)
class Dependencies:
    """Everything a handler may use."""

    unit_of_work: UnitOfWorkFactory
    sender: EmailSender
    composer: EmailComposer
    clock: Callable[[], datetime]
    link_base_url: str
    # How long a worker may take to hand one email to the SMTP server before another worker
    # may assume it crashed and send it again.
    claim_lease: timedelta
    # How often a duplicate checks whether the worker holding the claim has finished.
    busy_poll: timedelta = timedelta(milliseconds=100)


async def send_notification(command: SendNotification, deps: Dependencies) -> Outcome:
    """Email the link for a verification or reset token, at most once per event unless a
    crash interrupts between the SMTP server's acceptance and the commit."""
    # A live claim means another worker is sending this very event (a duplicate delivered
    # concurrently). Waiting for it to settle, rather than failing at once, keeps the
    # duplicate from using up the message's receives; a claim that lapses is taken over.
    give_up = deps.clock() + deps.claim_lease + deps.busy_poll * 2
    while True:
        begun = await _begin(command, deps)
        if begun is not None:
            break
        if deps.clock() >= give_up:
            raise DeliveryInProgressError(command.event_id)
        await asyncio.sleep(deps.busy_poll.total_seconds())
    if not isinstance(begun, Claim):
        return begun
    claim = begun

    try:
        email = deps.composer.compose(
            command.kind,
            to=command.email,
            link=action_link(deps.link_base_url, command.kind, command.token),
            expires_at=command.expires_at,
            reference=str(command.event_id),
        )
        await deps.sender.send(email)
    except BaseException:
        await _release(deps, command, claim)
        raise

    sent_at = deps.clock()
    async with deps.unit_of_work() as uow:
        completed = await uow.notifications.complete(claim, sent_at)
        await uow.processed.add(command.event_id, command.event_type, sent_at)
        await uow.commit()
    if not completed:
        # Our lease lapsed while the server was accepting the message, and another worker
        # took the entry over: it sends (or has sent) a copy with the same Message-ID.
        log.warning(
            "%s %s: the claim lapsed during the send; the email may go out twice",
            command.event_type,
            command.event_id,
        )
    return Outcome.SENT


async def _begin(command: SendNotification, deps: Dependencies) -> Outcome | Claim | None:
    """Step 1: claim the email, or settle the event without sending; None while another
    worker's claim is live."""
    now = deps.clock()
    async with deps.unit_of_work() as uow:
        deactivated = await uow.users.lock(command.user_id)
        if await uow.processed.contains(command.event_id):
            return _duplicate(command)
        reason: SkipReason | None = None
        if deactivated is not None and deactivated > command.sequence:
            reason = SkipReason.DEACTIVATED
        elif command.expires_at <= now:
            reason = SkipReason.EXPIRED
        entry = NewEntry(
            id=uuid.uuid4(),
            event_id=command.event_id,
            user_id=command.user_id,
            sequence=command.sequence,
            kind=command.kind,
            # A deactivated user's address is personal data the log must not keep.
            recipient=None if reason is SkipReason.DEACTIVATED else command.email,
            subject=SUBJECTS[command.kind],
        )
        if reason is None:
            claim = await uow.notifications.claim(entry, now, now + deps.claim_lease)
            if claim is not None:
                await uow.commit()
            return claim
        if not await uow.notifications.settle_skipped(entry, reason, now):
            return None
        await uow.processed.add(command.event_id, command.event_type, now)
        await uow.commit()
    log.info("skipped %s %s: %s", command.event_type, command.event_id, reason.value)
    return Outcome.SKIPPED


async def _release(deps: Dependencies, command: SendNotification, claim: Claim) -> None:
    try:
        async with deps.unit_of_work() as uow:
            await uow.notifications.release(claim)
            await uow.commit()
    except Exception:
        # The lease lapses on its own; the retry merely waits for it.
        log.exception("could not release the claim on %s", command.event_id)


def _duplicate(command: SendNotification | ForgetUser) -> Outcome:
    log.info("absorbed duplicate %s %s", command.event_type, command.event_id)
    return Outcome.DUPLICATE


async def forget_user(command: ForgetUser, deps: Dependencies) -> Outcome:
    """Keep a tombstone of the deactivation and erase the user's address from every entry
    about an earlier event; idempotent, and order-independent with the email events."""
    now = deps.clock()
    async with deps.unit_of_work() as uow:
        known = await uow.users.lock(command.user_id)
        if not await uow.processed.add(command.event_id, command.event_type, now):
            return _duplicate(command)
        sequence = command.sequence if known is None else max(known, command.sequence)
        if known is None or command.sequence > known:
            await uow.users.mark_deactivated(command.user_id, sequence, command.deactivated_at)
        erased = await uow.notifications.erase_recipients(command.user_id, sequence)
        await uow.commit()
    log.info("user %s deactivated: erased %d recipient addresses", command.user_id, erased)
    return Outcome.ERASED


async def list_notifications(query: ListNotifications, deps: Dependencies) -> Page:
    """One page of the log, newest first."""
    async with deps.unit_of_work() as uow:
        return await uow.notifications.page(query)
