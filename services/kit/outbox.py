"""The transactional outbox: events are written in the same database transaction as the change
that caused them, and a relay publishes them to the bus afterwards.

This is how the send operations of `contracts/asyncapi/auth-service.yaml` are implemented: a
service adds `outbox_table(metadata)` to its schema and publishes through an
`OutboxEventPublisher` bound to its session, so the event commits (or rolls back) with the
change. An `OutboxRelay` then claims committed rows, publishes them through the real
`EventPublisher` (SNS, or the in-memory bus), and marks them published.

Throughput: a relay publishes ten rows to a `PublishBatch` call (`BatchPublisher`; one at a
time through a publisher that cannot batch), with up to `publish_concurrency` calls in flight.
Each call is one *lane* of a pass: the lane claims a batch, publishes it, marks it, and claims
the next; a second lane starts when a claim comes back full (more rows are waiting), and so on
up to `publish_concurrency`, so an idle relay claims no more often than a sequential one. Lanes
claim exactly as separate relays would, with the same lease.

Order: none is promised. SNS standard topics do not keep it, and the lanes publish their
batches side by side, so events, even two about one user, may reach a queue in any order. The
consumers do not need it: each event carries its per-user `sequence`, and each consumer's
state is the same whatever order events arrive in (DESIGN.md, "Order independence").

Guarantees:
- nothing is lost: a row stays until it has been published, however long the bus is down;
  each failure pushes the row's next attempt back exponentially;
- no two relays publish one row at the same time: a relay claims rows for a lease
  (`claimed_until`), with `SELECT … FOR UPDATE SKIP LOCKED` on PostgreSQL and a conditional
  `UPDATE … WHERE claimed_until < now` on SQLite, whose writers are serialised anyway;
- at least once, not exactly once: a relay that dies between publishing and marking leaves
  the row to be published again once its lease expires (consumers are idempotent);
- a row is marked published only once SNS has accepted it: in a `PublishBatch` whose answer
  lists some entries as `Failed` (or leaves them out), those rows alone stay pending, each with
  its attempt counted and its retry backed off, while the accepted ones are marked;
- no secrets at rest after publishing: the UPDATE that marks a row published rewrites its body
  to the envelope (`ENVELOPE_FIELDS`), so reset and verification tokens and emails stay only in
  rows still waiting for the bus. Published rows are deleted after a retention period
  (`services.kit.retention.published_outbox`).

Publishing starts right after a commit: the unit of work tells its publisher the transaction
committed (`OutboxEventPublisher.committed`), which, if it wrote rows, wakes the store's
`RelaySignal`, to which the relay listens (`notify()`). A slow poll is the safety net for
commits made by other processes and for rows waiting out their backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    Uuid,
    and_,
    bindparam,
    case,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.types import JSON

from services.kit.bus import PUBLISH_BATCH_MAX, EventPublisher, publish_batch
from services.kit.database import UtcDateTime
from services.kit.events import Event, Message, encode
from services.kit.tracing import Tracing, written_to_outbox

log = logging.getLogger("accord.outbox")

# What a published row keeps of its body: the fields every event's envelope has, enough to
# trace it (`eventId`, per-user `sequence`), none of the payload's secrets.
ENVELOPE_FIELDS = (
    "eventId",
    "eventType",
    "schemaVersion",
    "sequence",
    "userId",
    "timestamp",
    "source",
)


def now_utc() -> datetime:
    return datetime.now(UTC)


def outbox_table(metadata: MetaData, name: str = "outbox") -> Table:
    """The outbox, added to a service's own metadata (and its migrations)."""
    table = Table(
        name,
        metadata,
        # SQLite autoincrements only INTEGER PRIMARY KEY; PostgreSQL gets a BIGINT.
        Column(
            "id",
            BigInteger().with_variant(Integer(), "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        Column("event_id", Uuid(), nullable=False, unique=True),
        Column("event_type", String(100), nullable=False),
        Column("body", Text(), nullable=False),
        Column("attributes", JSON(), nullable=False),
        Column("created_at", UtcDateTime(), nullable=False),
        Column("published_at", UtcDateTime(), nullable=True),
        Column("attempts", Integer(), nullable=False, server_default="0"),
        Column("next_attempt_at", UtcDateTime(), nullable=False),
        Column("claimed_until", UtcDateTime(), nullable=True),
        Column("last_error", Text(), nullable=True),
    )
    Index(f"ix_{name}_pending", table.c.published_at, table.c.next_attempt_at)
    return table


class RelaySignal:
    """Says that outbox rows have just committed: a store's units of work wake it after a
    commit that wrote events, and the relay listens to it, so that it publishes at once
    rather than at its next poll. One listener (the service's relay); with none, `wake` does
    nothing and the poll publishes."""

    def __init__(self) -> None:
        self._listener: Callable[[], None] | None = None

    def connect(self, listener: Callable[[], None]) -> None:
        """Call `listener` (the relay's `notify`) on every `wake`."""
        self._listener = listener

    def wake(self) -> None:
        """Rows have committed: the listener publishes them now."""
        if self._listener is not None:
            self._listener()


class OutboxEventPublisher:
    """`EventPublisher` that writes events into the outbox within the caller's transaction.
    The caller says when that transaction has committed (`committed`), and the publisher then
    wakes `signal` if it wrote any row: only the publisher knows whether it did."""

    def __init__(
        self,
        session: AsyncSession,
        table: Table,
        *,
        clock: Callable[[], datetime] = now_utc,
        signal: RelaySignal | None = None,
    ) -> None:
        self.session = session
        self.table = table
        self.clock = clock
        self.signal = signal
        self._pending = False

    def committed(self) -> None:
        """The caller's transaction has committed: wake the relay if it holds rows of ours."""
        if self._pending:
            self._pending = False
            if self.signal is not None:
                self.signal.wake()

    async def publish(self, event: Event) -> None:
        # Encoding now validates the event and captures the request's traceparent, which the
        # relay, running later in another task, no longer has.
        await self.publish_message(encode(event))

    async def publish_message(self, message: Message) -> None:
        event_type = message.event_type
        if event_type is None:
            raise ValueError("an outbox message needs an eventType attribute")
        event_id = _event_id(message)
        now = self.clock()
        await self.session.execute(
            insert(self.table).values(
                event_id=event_id,
                event_type=event_type,
                body=message.body,
                attributes=dict(message.attributes),
                created_at=now,
                next_attempt_at=now,
                attempts=0,
            )
        )
        self._pending = True
        # The event's first hop, on the span of the request that wrote it (the console's).
        written_to_outbox(event_type, str(event_id))


def _event_id(message: Message) -> uuid.UUID:
    try:
        return uuid.UUID(str(json.loads(message.body)["eventId"]))
    except (ValueError, KeyError, TypeError) as error:
        raise ValueError(f"an outbox message needs an eventId in its body ({error})") from None


@dataclass(frozen=True)
class RelayOptions:
    """Tuning of a relay: rows a claim takes, claims published at once, safety-net poll,
    claim lease, retry backoff."""

    # Rows one claim takes: one PublishBatch call's worth (more go in several calls, in turn).
    batch_size: int = PUBLISH_BATCH_MAX
    # Lanes of a pass, each with its claim and its PublishBatch call in flight.
    publish_concurrency: int = 4
    poll_interval: float = 5.0
    lease: timedelta = timedelta(seconds=60)
    backoff_base: float = 1.0
    backoff_cap: float = 300.0

    def backoff(self, attempts: int) -> float:
        """Delay before the next attempt after `attempts` failures: base·2^(n-1), capped."""
        return float(min(self.backoff_cap, self.backoff_base * 2 ** max(0, attempts - 1)))


@dataclass(frozen=True)
class _Claimed:
    id: int
    event_id: uuid.UUID
    event_type: str
    message: Message
    attempts: int


class OutboxRelay:
    """Publishes committed outbox rows through an `EventPublisher`, marking each one published."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        table: Table,
        publisher: EventPublisher,
        options: RelayOptions | None = None,
        *,
        clock: Callable[[], datetime] = now_utc,
        name: str = "outbox-relay",
        tracing: Tracing | None = None,
    ) -> None:
        self.sessions = sessions
        self.table = table
        self.publisher = publisher
        self.options = options or RelayOptions()
        self.clock = clock
        self.name = name
        # Each row is published in a span, child of the request's stored in its `traceparent`.
        self.tracing = tracing or Tracing.off()
        self._wake: asyncio.Event | None = None
        self._stop: asyncio.Event | None = None
        self._runner: asyncio.Task[None] | None = None
        # On SQLite, which locks nothing on SELECT, two claims at once would pick the same
        # candidates and one would come back empty-handed: this relay's lanes claim in turn.
        # PostgreSQL's SKIP LOCKED gives each concurrent claim other rows.
        bind = sessions.kw.get("bind")
        in_turn = bind is None or bind.dialect.name != "postgresql"
        self._claiming: contextlib.AbstractAsyncContextManager[Any] = (
            asyncio.Lock() if in_turn else contextlib.nullcontext()
        )
        # Consecutive rounds that ended in a publish failure: while the bus is down the relay
        # itself backs off, so that every commit's notify() does not hammer it.
        self._failed_rounds = 0

    # --- lifecycle -------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._runner is not None and not self._runner.done()

    async def start(self) -> None:
        if self.running:
            return
        self._stop = asyncio.Event()
        self._wake = asyncio.Event()
        self._wake.set()  # publish whatever is already waiting
        self._runner = asyncio.create_task(self._run(), name=self.name)

    async def stop(self) -> None:
        """Stop after the batch in flight (a row claimed but never marked is published again
        by whichever relay claims it once its lease has expired)."""
        if self._stop is not None:
            self._stop.set()
        if self._wake is not None:
            self._wake.set()
        if self._runner is not None:
            runner, self._runner = self._runner, None
            try:
                await asyncio.wait_for(runner, timeout=self.options.lease.total_seconds())
            except TimeoutError:
                log.warning("%s did not stop in time; cancelled", self.name)

    def notify(self) -> None:
        """Publish now: a transaction that wrote outbox rows has just committed."""
        if self._wake is not None:
            self._wake.set()

    @property
    def _stopping(self) -> bool:
        return self._stop is not None and self._stop.is_set()

    async def _run(self) -> None:
        assert self._wake is not None
        assert self._stop is not None
        while not self._stopping:
            self._wake.clear()
            failed_before = self._failed_rounds
            try:
                await self.publish_pending()
            except Exception:
                # The database is unreachable, most likely: the safety-net poll tries again.
                log.exception("%s could not publish the outbox", self.name)
            if self._stopping:
                break
            if self._failed_rounds > failed_before:
                # The bus is failing: back off, and let no notify() cut the pause short.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(
                        self._stop.wait(), timeout=self.options.backoff(self._failed_rounds)
                    )
                continue
            timeout = await self._time_to_next_due()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=timeout)

    async def _time_to_next_due(self) -> float:
        """Seconds until the earliest unpublished row can be claimed, at most a poll interval."""
        t = self.table
        poll = self.options.poll_interval
        # A row is claimable once its backoff is over and no other relay's lease covers it.
        claimable_at = case(
            (t.c.claimed_until > t.c.next_attempt_at, t.c.claimed_until),
            else_=t.c.next_attempt_at,
        )
        try:
            async with self.sessions() as session:
                due = (
                    await session.execute(
                        select(func.min(claimable_at)).where(t.c.published_at.is_(None))
                    )
                ).scalar()
        except Exception:
            return poll
        if not isinstance(due, datetime):
            return poll
        if due.tzinfo is None:
            due = due.replace(tzinfo=UTC)
        return max(0.01, min(poll, (due - self.clock()).total_seconds()))

    # --- one pass --------------------------------------------------------------------------

    async def publish_pending(self) -> int:
        """Publish every row that is due now, in up to `publish_concurrency` lanes; the number
        published. A publish failure ends the pass (the bus is likely down, or throttling) once
        the batches in flight have settled, after scheduling the failed rows' retries."""
        lanes: list[asyncio.Task[int]] = []
        halt = asyncio.Event()  # a lane failed: the others stop after their batch in flight
        refused = False

        async def lane() -> int:
            nonlocal refused
            published = 0
            try:
                batch = await self.claim()
                while batch:
                    if len(batch) >= self.options.batch_size:
                        widen()  # a full claim: more rows are likely waiting
                    accepted, failures = await self._publish(batch)
                    published += len(accepted)
                    if failures:
                        refused = True
                        halt.set()
                    go_on = not (self._stopping or halt.is_set())
                    batch = await self._settle(batch, accepted, failures, claim_next=go_on)
            except BaseException:
                halt.set()
                raise
            return published

        def widen() -> None:
            if len(lanes) < max(1, self.options.publish_concurrency) and not halt.is_set():
                lanes.append(asyncio.create_task(lane(), name=f"{self.name}-lane-{len(lanes)}"))

        if self._stopping:
            return 0
        widen()
        published = 0
        errors: list[BaseException] = []
        try:
            index = 0
            while index < len(lanes):  # lanes started while waiting are waited for too
                try:
                    published += await lanes[index]
                except Exception as error:
                    errors.append(error)
                index += 1
        finally:
            for task in lanes:
                task.cancel()  # only when cancelled itself: the others have ended by now
        self._failed_rounds = self._failed_rounds + 1 if refused else 0
        if errors:
            raise errors[0]
        return published

    async def claim(self) -> list[_Claimed]:
        """Claim up to a batch of due rows for this relay's lease, in the order written."""
        async with self._claiming:
            while True:
                async with self.sessions() as session, session.begin():
                    found, claimed = await self._claim_in(session)
                if claimed or not found:
                    return claimed
                # Another relay claimed every candidate between our two statements (SQLite
                # locks nothing on SELECT): look again rather than end the pass.

    async def _claim_in(self, session: AsyncSession) -> tuple[bool, list[_Claimed]]:
        """Claim in `session`'s transaction: whether there were candidates, and the rows
        claimed (none when another relay took every candidate first)."""
        t = self.table
        now = self.clock()
        claimable = and_(
            t.c.published_at.is_(None),
            t.c.next_attempt_at <= now,
            or_(t.c.claimed_until.is_(None), t.c.claimed_until < now),
        )
        # Two statements in one transaction. PostgreSQL locks the candidates and skips rows
        # another relay is claiming right now; SQLite renders no FOR UPDATE, but the UPDATE
        # re-checks the claim, and SQLite's single writer makes it atomic. (One statement,
        # `UPDATE … WHERE id IN (SELECT … LIMIT n FOR UPDATE SKIP LOCKED)`, is not safe: the
        # planner may rescan the subquery per row and claim far more than n.)
        candidates = (
            select(t.c.id)
            .where(claimable)
            .order_by(t.c.id)
            .limit(self.options.batch_size)
            .with_for_update(skip_locked=True)
        )
        ids = list((await session.execute(candidates)).scalars())
        if not ids:
            return False, []
        rows = (
            await session.execute(
                update(t)
                .where(t.c.id.in_(ids), claimable)
                .values(claimed_until=now + self.options.lease)
                .returning(
                    t.c.id, t.c.event_id, t.c.event_type, t.c.body, t.c.attributes, t.c.attempts
                )
            )
        ).all()
        claimed = [
            _Claimed(
                id=row.id,
                event_id=row.event_id,
                event_type=row.event_type,
                message=Message(row.body, _attributes(row.attributes)),
                attempts=row.attempts,
            )
            for row in rows
        ]
        return True, sorted(claimed, key=lambda row: row.id)

    async def _publish(
        self, batch: Sequence[_Claimed]
    ) -> tuple[list[int], list[tuple[_Claimed, BaseException]]]:
        """Publish a claimed batch, ten rows to a call: the ids SNS accepted, and the rows it
        refused with why. After a call with a refusal the rest of the batch is not tried."""
        accepted: list[int] = []
        failures: list[tuple[_Claimed, BaseException]] = []
        for start in range(0, len(batch), PUBLISH_BATCH_MAX):
            chunk = batch[start : start + PUBLISH_BATCH_MAX]
            spans = self.tracing.publishing(
                [c.message for c in chunk], destination=getattr(self.publisher, "topic", None)
            )
            try:
                outcomes = await publish_batch(self.publisher, spans.messages)
            except Exception as error:  # a publisher that raised rather than answer
                outcomes = [error] * len(chunk)
            spans.end(outcomes)
            for claimed, outcome in zip(chunk, outcomes, strict=True):
                if outcome is None:
                    accepted.append(claimed.id)
                else:
                    failures.append((claimed, outcome))
            if failures:
                break
        return accepted, failures

    async def _settle(
        self,
        batch: Sequence[_Claimed],
        published: list[int],
        failures: Sequence[tuple[_Claimed, BaseException]],
        *,
        claim_next: bool = False,
    ) -> list[_Claimed]:
        """Mark the published rows, schedule the refused ones' retries, release the rest as
        they were; and with `claim_next`, claim the next batch in the same transaction (one
        commit a batch rather than two), which it returns."""
        t = self.table
        now = self.clock()
        attempted = set(published)
        found = False
        next_batch: list[_Claimed] = []
        claiming = self._claiming if claim_next else contextlib.nullcontext()
        async with claiming, self.sessions() as session, session.begin():
            if published:
                # The bus has the event now: the row keeps its envelope, not the payload's
                # secrets (reset and verification tokens, emails), in the UPDATE that marks it.
                bodies = {claimed.id: claimed.message.body for claimed in batch}
                await session.execute(
                    update(t)
                    .where(t.c.id == bindparam("row_id"))
                    .values(
                        body=bindparam("envelope"),
                        published_at=now,
                        claimed_until=None,
                        last_error=None,
                    ),
                    [
                        {"row_id": row_id, "envelope": envelope_only(bodies[row_id])}
                        for row_id in published
                    ],
                )
            if failures:
                retries = []
                for claimed, error in failures:
                    attempted.add(claimed.id)
                    attempts = claimed.attempts + 1
                    delay = self.options.backoff(attempts)
                    retries.append(
                        {
                            "row_id": claimed.id,
                            "attempts": attempts,
                            "next_attempt_at": now + timedelta(seconds=delay),
                            "last_error": f"{type(error).__name__}: {error}"[:2000],
                        }
                    )
                    log.warning(
                        "%s: publishing %s %s failed (attempt %d), retrying in %.1fs: %s",
                        self.name,
                        claimed.event_type,
                        claimed.event_id,
                        attempts,
                        delay,
                        error,
                    )
                await session.execute(
                    update(t)
                    .where(t.c.id == bindparam("row_id"))
                    .values(
                        attempts=bindparam("attempts"),
                        next_attempt_at=bindparam("next_attempt_at"),
                        claimed_until=None,
                        last_error=bindparam("last_error"),
                    ),
                    retries,
                )
            untouched = [claimed.id for claimed in batch if claimed.id not in attempted]
            if untouched:
                # Released unattempted, so they keep their place and their attempt count.
                await session.execute(
                    update(t).where(t.c.id.in_(untouched)).values(claimed_until=None)
                )
            if claim_next:
                found, next_batch = await self._claim_in(session)
        if found and not next_batch:
            return await self.claim()  # another relay took the candidates: look again
        return next_batch


def envelope_only(body: str) -> str:
    """`body` reduced to the envelope fields (`ENVELOPE_FIELDS`): what a published row keeps."""
    try:
        decoded = json.loads(body)
    except ValueError:
        decoded = None
    if not isinstance(decoded, dict):
        return "{}"
    return json.dumps(
        {name: decoded[name] for name in ENVELOPE_FIELDS if name in decoded}, separators=(",", ":")
    )


def _attributes(value: Any) -> dict[str, str]:
    if not isinstance(value, dict):
        raise TypeError(f"outbox attributes must be a JSON object, not {type(value).__name__}")
    return {str(key): str(item) for key, item in value.items()}
