"""The transactional outbox: nothing is lost while the bus is down, publishing starts right
after a commit, and relays sharing a database never publish one row at the same time."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import MetaData, Table, func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from generated.events import models as events
from services.auth.storage import outbox
from services.kit.database import create_engine, sessionmaker
from services.kit.events import Event, Message, decode, encode
from services.kit.outbox import OutboxEventPublisher, OutboxRelay, RelayOptions, outbox_table
from tests import factories
from tests.auth.conftest import PASSWORD, AppFactory, Bus, Clock


class UnavailableError(ConnectionError):
    pass


class FlakyPublisher:
    """Fails while `down`, otherwise hands messages to `inner`; counts every attempt."""

    def __init__(self, inner: RecordingPublisher | None = None, *, down: bool = True) -> None:
        self.inner = inner or RecordingPublisher()
        self.down = down
        self.attempts = 0

    async def publish(self, event: Event) -> None:
        await self.publish_message(encode(event))

    async def publish_message(self, message: Message) -> None:
        self.attempts += 1
        if self.down:
            raise UnavailableError("SNS is unreachable")
        await self.inner.publish_message(message)


class RecordingPublisher:
    """Records what it publishes, yielding to other tasks on every publish like real I/O;
    with a `gate`, nothing is published before the gate opens."""

    def __init__(self, gate: asyncio.Event | None = None) -> None:
        self.published: list[Event] = []
        self.gate = gate

    async def publish(self, event: Event) -> None:
        await self.publish_message(encode(event))

    async def publish_message(self, message: Message) -> None:
        if self.gate is not None:
            await self.gate.wait()
        await asyncio.sleep(0.001)
        self.published.append(decode(message))


async def eventually(check: collections.abc.Callable[[], bool], seconds: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached")
        await asyncio.sleep(0.01)


async def eventually_async(
    probe: collections.abc.Callable[[], collections.abc.Awaitable[int]],
    check: collections.abc.Callable[[int], bool],
    seconds: float = 10.0,
) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while not check(await probe()):
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached")
        await asyncio.sleep(0.01)


async def claimed_rows(db: OutboxDb) -> int:
    async with db.sessions() as session:
        claimed = select(func.count()).where(
            db.table.c.claimed_until.is_not(None), db.table.c.published_at.is_(None)
        )
        return int((await session.execute(claimed)).scalar_one())


# --- through the service -------------------------------------------------------------------


async def test_registration_succeeds_while_the_bus_is_down_and_the_event_follows_later(
    start_auth: AppFactory,
) -> None:
    flaky = FlakyPublisher(down=True)
    async with start_auth(publisher=flaky) as auth:
        response = await auth.http.post(
            "/api/v1/auth/register", json={"email": "ada@example.com", "password": PASSWORD}
        )
        await eventually(lambda: flaky.attempts >= 3)  # retried, with backoff
        async with auth.adapters.store.sessions() as session:
            row = (await session.execute(select(outbox))).one()
        assert row.published_at is None
        assert row.attempts >= 2
        assert row.last_error == "UnavailableError: SNS is unreachable"

        flaky.down = False
        await eventually(lambda: len(flaky.inner.published) == 1)
        await asyncio.sleep(0.3)

    assert response.status_code == 201
    [event] = flaky.inner.published
    assert isinstance(event, events.UserCreatedPayload)
    assert str(event.userId) == response.json()["userId"]


async def test_publishing_starts_right_after_the_commit_not_at_the_next_poll(
    start_auth: AppFactory, bus: Bus
) -> None:
    async with start_auth(outbox_poll_seconds=60) as auth:
        await bus.settle(0.1)  # the relay's first pass is over; the next poll is a minute away
        started = asyncio.get_running_loop().time()
        await auth.register()
        await bus.wait_for(1, seconds=5)
        elapsed = asyncio.get_running_loop().time() - started

    assert elapsed < 5


# --- the relay on its own --------------------------------------------------------------------


@dataclass
class OutboxDb:
    url: str
    table: Table
    sessions: async_sessionmaker[AsyncSession]


@pytest.fixture
async def outbox_db(database_url: str) -> AsyncIterator[OutboxDb]:
    """An outbox table in its own metadata: the kit's outbox, whatever the service."""
    metadata = MetaData()
    table = outbox_table(metadata)
    engine = create_engine(database_url)
    async with engine.begin() as connection:
        await connection.run_sync(metadata.create_all)
    yield OutboxDb(database_url, table, sessionmaker(engine))
    await engine.dispose()


async def write_events(db: OutboxDb, count: int, clock: Clock) -> list[uuid.UUID]:
    written = [factories.user_created() for _ in range(count)]
    async with db.sessions() as session, session.begin():
        writer = OutboxEventPublisher(session, db.table, clock=clock)
        for event in written:
            await writer.publish(event)
    return [event.eventId for event in written]


async def test_two_relays_on_one_database_publish_each_row_exactly_once(
    outbox_db: OutboxDb, clock: Clock
) -> None:
    written = await write_events(outbox_db, 300, clock)
    gate = asyncio.Event()
    publishers = [RecordingPublisher(gate), RecordingPublisher(gate)]
    engines = [create_engine(outbox_db.url) for _ in publishers]
    relays = [
        OutboxRelay(
            sessionmaker(engine),
            outbox_db.table,
            publisher,
            RelayOptions(batch_size=10, publish_concurrency=2, poll_interval=0.05),
            clock=clock,
            name=f"relay-{index}",
        )
        for index, (engine, publisher) in enumerate(zip(engines, publishers, strict=True))
    ]
    try:
        await asyncio.gather(*(relay.start() for relay in relays))
        # Both relays hold a claimed batch in each of their two lanes before anything is
        # published, so every lane had to claim around the rows the others hold.
        await eventually_async(lambda: claimed_rows(outbox_db), lambda n: n == 40)
        gate.set()
        await eventually(lambda: sum(len(p.published) for p in publishers) >= len(written))
        await asyncio.sleep(0.2)  # time for a duplicate to show up, if there were one
    finally:
        gate.set()
        for relay in relays:
            await relay.stop()
        for engine in engines:
            await engine.dispose()

    counts = collections.Counter(event.eventId for p in publishers for event in p.published)
    assert set(counts) == set(written)
    assert set(counts.values()) == {1}
    assert all(publisher.published for publisher in publishers)  # both relays took part
    async with outbox_db.sessions() as session:
        pending = select(func.count()).where(outbox_db.table.c.published_at.is_(None))
        assert (await session.execute(pending)).scalar() == 0


async def test_a_claim_takes_one_batch_in_order_and_the_next_claim_the_next_batch(
    outbox_db: OutboxDb, clock: Clock
) -> None:
    written = await write_events(outbox_db, 25, clock)
    relay = OutboxRelay(
        outbox_db.sessions,
        outbox_db.table,
        RecordingPublisher(),
        RelayOptions(batch_size=10),
        clock=clock,
    )

    batches = [await relay.claim() for _ in range(4)]

    assert [len(batch) for batch in batches] == [10, 10, 5, 0]
    assert [claimed.event_id for batch in batches for claimed in batch] == written


async def test_a_row_claimed_by_a_relay_that_died_is_published_after_its_lease(
    outbox_db: OutboxDb, clock: Clock
) -> None:
    [event_id] = await write_events(outbox_db, 1, clock)
    options = RelayOptions(lease=timedelta(seconds=30))
    crashed = OutboxRelay(
        outbox_db.sessions, outbox_db.table, RecordingPublisher(), options, clock=clock
    )
    survivor_publisher = RecordingPublisher()
    survivor = OutboxRelay(
        outbox_db.sessions, outbox_db.table, survivor_publisher, options, clock=clock
    )

    assert len(await crashed.claim()) == 1  # …and it dies before publishing or marking
    during_lease = await survivor.publish_pending()
    clock.advance(timedelta(seconds=31))
    after_lease = await survivor.publish_pending()

    assert during_lease == 0
    assert after_lease == 1
    assert [event.eventId for event in survivor_publisher.published] == [event_id]


async def test_an_event_written_in_a_rolled_back_transaction_is_never_published(
    outbox_db: OutboxDb, clock: Clock
) -> None:
    async with outbox_db.sessions() as session:
        await session.begin()
        await OutboxEventPublisher(session, outbox_db.table, clock=clock).publish(
            factories.user_created()
        )
        await session.rollback()
    publisher = RecordingPublisher()

    published = await OutboxRelay(
        outbox_db.sessions, outbox_db.table, publisher, clock=clock
    ).publish_pending()

    assert published == 0
    assert publisher.published == []


async def test_a_failing_row_is_retried_with_exponential_backoff_and_never_dropped(
    outbox_db: OutboxDb, clock: Clock
) -> None:
    await write_events(outbox_db, 1, clock)
    flaky = FlakyPublisher(down=True)
    relay = OutboxRelay(
        outbox_db.sessions,
        outbox_db.table,
        flaky,
        RelayOptions(backoff_base=10, backoff_cap=1000),
        clock=clock,
    )

    async def delay_after_attempt() -> float:
        async with outbox_db.sessions() as session:
            row = (await session.execute(select(outbox_db.table))).one()
        return float((row.next_attempt_at - clock()).total_seconds())

    delays = []
    for _ in range(4):
        await relay.publish_pending()
        delays.append(round(await delay_after_attempt()))
        assert await relay.publish_pending() == 0  # nothing is due during the backoff
        clock.advance(timedelta(seconds=delays[-1] + 1))
    flaky.down = False
    published = await relay.publish_pending()

    assert delays == [10, 20, 40, 80]
    assert flaky.attempts == 5
    assert published == 1


# --- publishing in batches -------------------------------------------------------------------


class RefusingBatchPublisher:
    """A `BatchPublisher` that refuses the messages of the events in `refuse` (as SNS lists an
    entry under `Failed`) and accepts the rest; it records every call's size, and the most
    calls it had under way at once. With `together`, the first calls wait (10 s at most) until
    that many are under way, so that a test need not count on timing to see them overlap."""

    def __init__(self, refuse: set[uuid.UUID] | None = None, *, together: int = 1) -> None:
        self.refuse = refuse if refuse is not None else set()
        self.published: list[Event] = []
        self.calls: list[int] = []
        self.under_way = 0
        self.most_under_way = 0
        self.together = together
        self.all_there = asyncio.Event()

    async def publish(self, event: Event) -> None:
        await self.publish_message(encode(event))

    async def publish_message(self, message: Message) -> None:
        raise AssertionError("the relay publishes in batches")

    async def publish_batch(self, messages: Sequence[Message]) -> list[Exception | None]:
        self.calls.append(len(messages))
        self.under_way += 1
        self.most_under_way = max(self.most_under_way, self.under_way)
        if self.under_way >= self.together:
            self.all_there.set()
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.all_there.wait(), 10)
            await asyncio.sleep(0.001)  # a round trip
        finally:
            self.under_way -= 1
        outcomes: list[Exception | None] = []
        for message in messages:
            event = decode(message)
            if event.eventId in self.refuse:
                outcomes.append(RuntimeError("Throttled: rate exceeded"))
            else:
                self.published.append(event)
                outcomes.append(None)
        return outcomes


async def rows_by_event(db: OutboxDb) -> dict[uuid.UUID, Any]:
    async with db.sessions() as session:
        return {row.event_id: row for row in (await session.execute(select(db.table))).all()}


async def test_a_partly_refused_batch_marks_the_accepted_rows_and_retries_only_the_refused(
    outbox_db: OutboxDb, clock: Clock
) -> None:
    written = await write_events(outbox_db, 10, clock)
    refused = set(written[2:5])
    publisher = RefusingBatchPublisher(refuse=set(refused))
    relay = OutboxRelay(
        outbox_db.sessions,
        outbox_db.table,
        publisher,
        RelayOptions(backoff_base=10, backoff_cap=1000),
        clock=clock,
    )

    first_pass = await relay.publish_pending()
    rows = await rows_by_event(outbox_db)
    publisher.refuse.clear()
    during_backoff = await relay.publish_pending()
    clock.advance(timedelta(seconds=11))
    after_backoff = await relay.publish_pending()

    assert first_pass == 7
    assert publisher.calls == [10, 3]  # one PublishBatch, then the three refused entries alone
    assert {event_id for event_id, row in rows.items() if row.published_at is None} == refused
    for event_id in refused:
        assert rows[event_id].attempts == 1
        assert rows[event_id].last_error == "RuntimeError: Throttled: rate exceeded"
        assert rows[event_id].claimed_until is None
        delay = rows[event_id].next_attempt_at - rows[written[0]].published_at
        assert timedelta(seconds=9) < delay <= timedelta(seconds=10)
    assert all(rows[event_id].attempts == 0 for event_id in set(written) - refused)
    assert during_backoff == 0
    assert after_backoff == 3
    counts = collections.Counter(event.eventId for event in publisher.published)
    assert set(counts) == set(written)
    assert set(counts.values()) == {1}  # the accepted rows were never published again
    assert all(row.published_at is not None for row in (await rows_by_event(outbox_db)).values())


async def test_a_relay_publishes_ten_rows_to_a_call_with_several_calls_in_flight(
    outbox_db: OutboxDb, clock: Clock
) -> None:
    written = await write_events(outbox_db, 95, clock)
    publisher = RefusingBatchPublisher(together=3)
    relay = OutboxRelay(
        outbox_db.sessions,
        outbox_db.table,
        publisher,
        RelayOptions(publish_concurrency=3),
        clock=clock,
    )

    published = await relay.publish_pending()

    assert published == 95
    assert sorted(publisher.calls) == [5] + [10] * 9
    assert publisher.most_under_way == 3
    counts = collections.Counter(event.eventId for event in publisher.published)
    assert set(counts) == set(written)
    assert set(counts.values()) == {1}


async def test_a_relay_with_nothing_waiting_claims_once_not_once_per_lane(
    outbox_db: OutboxDb, clock: Clock
) -> None:
    await write_events(outbox_db, 3, clock)
    relay = OutboxRelay(
        outbox_db.sessions,
        outbox_db.table,
        RefusingBatchPublisher(),
        RelayOptions(publish_concurrency=4),
        clock=clock,
    )
    claims = 0
    claim = relay.claim

    async def counting_claim() -> list[Any]:
        nonlocal claims
        claims += 1
        return await claim()

    relay.claim = counting_claim  # type: ignore[method-assign]

    published = await relay.publish_pending()

    assert published == 3
    # Three rows, not a full batch: no second lane claims. (The lane's next claim, which finds
    # nothing, is made in the transaction that marks the three.)
    assert claims == 1
