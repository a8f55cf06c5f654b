"""The outbox relay on a moto server over HTTP: rows go out ten to a `PublishBatch` call, with
several calls in flight, and reach every subscribed queue with the attributes the filter
policies match on, exactly as single `Publish` calls delivered them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import MetaData, Table, func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.kit.bus import ReceivedMessage
from services.kit.database import create_engine, sessionmaker
from services.kit.events import Event, Message, decode, encode
from services.kit.outbox import OutboxEventPublisher, OutboxRelay, RelayOptions, outbox_table
from services.kit.sns import SnsEventPublisher
from services.kit.sqs import SqsQueue
from services.kit.topology import QueueSpec, SubscriptionSpec, TopicSpec, Topology
from tests import factories
from tests.integration.buses import MotoBus

pytestmark = pytest.mark.emulator


@pytest.fixture
async def outbox(tmp_path: Path) -> AsyncIterator[tuple[Table, async_sessionmaker[AsyncSession]]]:
    metadata = MetaData()
    table = outbox_table(metadata)
    engine = create_engine(f"sqlite:///{tmp_path / 'outbox.db'}")
    async with engine.begin() as connection:
        await connection.run_sync(metadata.create_all)
    yield table, sessionmaker(engine)
    await engine.dispose()


def provision(bus: MotoBus, prefix: str) -> tuple[str, str, str]:
    """A topic; `profiles` takes created and deactivated events, `mail` created only."""
    topic, profiles, mail = f"{prefix}topic", f"{prefix}profiles", f"{prefix}mail"
    bus.provision(
        Topology(
            topics=(TopicSpec(topic),),
            queues=(QueueSpec(profiles), QueueSpec(mail)),
            subscriptions=(
                SubscriptionSpec(
                    topic, profiles, {"eventType": ["user.created", "user.deactivated"]}
                ),
                SubscriptionSpec(topic, mail, {"eventType": ["user.created"]}),
            ),
        )
    )
    return topic, profiles, mail


async def drain(queue: SqsQueue, expected: int) -> list[ReceivedMessage]:
    """Everything in `queue`, once `expected` messages have come (then one more empty poll)."""
    taken: list[ReceivedMessage] = []
    for _ in range(100):  # a bound on waiting, not a claim about speed
        batch = await queue.receive(10, 1)
        taken += batch
        if len(taken) >= expected and not batch:
            break
    return taken


async def test_more_than_ten_rows_go_out_in_several_publish_batch_calls_to_every_queue(
    moto_endpoint: str,
    unique_prefix: str,
    outbox: tuple[Table, async_sessionmaker[AsyncSession]],
) -> None:
    table, sessions = outbox
    bus = MotoBus(moto_endpoint)
    topic, profiles, mail = provision(bus, unique_prefix)
    created: list[Event] = [factories.user_created() for _ in range(18)]
    deactivated: list[Event] = [factories.user_deactivated() for _ in range(7)]
    async with sessions() as session, session.begin():
        writer = OutboxEventPublisher(session, table)
        for event in created + deactivated:
            await writer.publish(event)
    calls: list[str] = []
    entries: list[int] = []

    def count(model: Any, params: dict[str, Any], **_: Any) -> None:
        calls.append(model.name)
        entries.append(len(params.get("PublishBatchRequestEntries", [None])))

    bus.sns.meta.events.register("before-parameter-build.sns.*", count)
    relay = OutboxRelay(
        sessions, table, SnsEventPublisher(bus.sns, topic), RelayOptions(publish_concurrency=3)
    )

    published = await relay.publish_pending()
    to_profiles = await drain(SqsQueue(bus.sqs, profiles), 25)
    to_mail = await drain(SqsQueue(bus.sqs, mail), 18)

    assert published == 25
    publishes = [n for name, n in zip(calls, entries, strict=True) if name != "ListTopics"]
    assert set(calls) - {"ListTopics"} == {"PublishBatch"}
    assert sorted(publishes) == [5, 10, 10]
    written = {event.eventId: encode(event) for event in created + deactivated}
    for received, expected in ((to_profiles, created + deactivated), (to_mail, created)):
        events = [decode(r.message) for r in received]
        assert sorted(str(e.eventId) for e in events) == sorted(str(e.eventId) for e in expected)
        for r, event in zip(received, events, strict=True):
            assert same_attributes(r.message, written[event.eventId])
    async with sessions() as session:
        pending = select(func.count()).where(table.c.published_at.is_(None))
        assert (await session.execute(pending)).scalar() == 0


def same_attributes(received: Message, sent: Message) -> bool:
    return dict(received.attributes) == dict(sent.attributes)
