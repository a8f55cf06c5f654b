"""One behaviour suite for the event bus, run against the in-memory bus and a moto server.

Both transports must give the same guarantees: fan-out, filter policies, intact attributes,
retries then dead-lettering, redrive, idempotent effects, and a stop that loses nothing.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, func, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from services.kit.bus import Delivery
from services.kit.consumer import Backoff, ConsumerOptions, QueueConsumer
from services.kit.database import AsyncSession, create_engine, sessionmaker
from services.kit.events import (
    Event,
    InvalidEventError,
    Message,
    decode,
    encode,
)
from services.kit.idempotency import IdempotentHandler, processed_events_table
from services.kit.topology import QueueSpec, SubscriptionSpec, TopicSpec, Topology
from services.kit.tracing import continuing
from tests import factories
from tests.integration.buses import Bus, MemoryBus, MotoBus

FAST = ConsumerOptions(max_in_flight=10, wait_seconds=1, backoff=Backoff(base=0))


@pytest.fixture(params=["memory", pytest.param("moto", marks=pytest.mark.emulator)])
def bus(request: pytest.FixtureRequest) -> Bus:
    if request.param == "memory":
        return MemoryBus()
    return MotoBus(request.getfixturevalue("moto_endpoint"))


@pytest.fixture
def names(unique_prefix: str) -> dict[str, str]:
    return {
        key: unique_prefix + key
        for key in ("topic", "profiles", "profiles-dlq", "mail", "mail-dlq")
    }


@pytest.fixture
def topology(bus: Bus, names: dict[str, str]) -> Topology:
    """One topic; `profiles` takes created and deactivated, `mail` created and verification."""
    topology = Topology(
        topics=(TopicSpec(names["topic"]),),
        queues=(
            QueueSpec(names["profiles-dlq"]),
            QueueSpec(names["mail-dlq"]),
            QueueSpec(names["profiles"], 30, 0, 345_600, names["profiles-dlq"], 3),
            QueueSpec(names["mail"], 30, 0, 345_600, names["mail-dlq"], 3),
        ),
        subscriptions=(
            SubscriptionSpec(
                names["topic"],
                names["profiles"],
                {"eventType": ["user.created", "user.deactivated"]},
            ),
            SubscriptionSpec(
                names["topic"],
                names["mail"],
                {"eventType": ["user.created", "user.email.verification.requested"]},
            ),
        ),
    )
    bus.provision(topology)
    return topology


class Recorder:
    """A handler that records what it handled, optionally failing for chosen users."""

    def __init__(self, fail_for: set[uuid.UUID] | None = None) -> None:
        self.handled: list[Event] = []
        self.attempts: dict[uuid.UUID, int] = {}
        self.fail_for = fail_for if fail_for is not None else set()

    async def __call__(self, event: Event, delivery: Delivery) -> None:
        self.attempts[event.eventId] = self.attempts.get(event.eventId, 0) + 1
        if event.userId in self.fail_for:
            raise RuntimeError(f"cannot handle user {event.userId}")
        self.handled.append(event)

    def ids(self) -> set[uuid.UUID]:
        return {event.eventId for event in self.handled}


async def eventually(check: Callable[[], bool], seconds: float = 15.0) -> None:
    """Wait for `check` to hold (a bound on waiting, not an assertion about speed)."""
    deadline = asyncio.get_running_loop().time() + seconds
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached")
        await asyncio.sleep(0.02)


@pytest.fixture
async def running() -> AsyncIterator[Callable[[QueueConsumer], Awaitable[QueueConsumer]]]:
    started: list[QueueConsumer] = []

    async def start(consumer: QueueConsumer) -> QueueConsumer:
        await consumer.start()
        started.append(consumer)
        return consumer

    yield start
    for consumer in started:
        await consumer.stop()


def subscribe_all(consumer: QueueConsumer, handler: Recorder) -> QueueConsumer:
    for event_type in ("user.created", "user.deactivated", "user.email.verification.requested"):
        consumer.subscribe(event_type, handler)
    return consumer


async def test_an_event_fans_out_to_every_subscribed_queue(
    bus: Bus, topology: Topology, names: dict[str, str], running: Callable[..., Awaitable[None]]
) -> None:
    profiles, mail = Recorder(), Recorder()
    await running(subscribe_all(bus.consumer(names["profiles"], FAST), profiles))
    await running(subscribe_all(bus.consumer(names["mail"], FAST), mail))
    event = factories.user_created()

    await bus.publisher(names["topic"]).publish(event)

    await eventually(lambda: bool(profiles.handled and mail.handled))
    assert profiles.handled == [event]
    assert mail.handled == [event]


async def test_a_filter_policy_keeps_an_event_out_of_a_queue_that_does_not_want_it(
    bus: Bus, topology: Topology, names: dict[str, str]
) -> None:
    publisher = bus.publisher(names["topic"])

    await publisher.publish(factories.user_deactivated())
    await publisher.publish(factories.verification_requested())

    assert bus.depth(names["profiles"]) == 1
    assert bus.depth(names["mail"]) == 1
    [received] = await bus.receive_raw(names["profiles"])
    assert received.message.event_type == "user.deactivated"


async def test_message_attributes_and_body_arrive_intact(
    bus: Bus, topology: Topology, names: dict[str, str]
) -> None:
    event = factories.user_created(email="grace@example.com")
    traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

    with continuing(traceparent):
        await bus.publisher(names["topic"]).publish(event)

    [received] = await bus.receive_raw(names["profiles"])
    assert dict(received.message.attributes) == {
        "eventType": "user.created",
        "source": "auth-service",
        "schemaVersion": "1.0.0",
        "traceparent": traceparent,
    }
    assert decode(received.message) == event
    assert json.loads(received.message.body)["email"] == "grace@example.com"


async def test_a_handler_failing_on_every_receive_dead_letters_while_others_flow(
    bus: Bus, topology: Topology, names: dict[str, str], running: Callable[..., Awaitable[None]]
) -> None:
    doomed = uuid.uuid4()
    handler = Recorder(fail_for={doomed})
    await running(subscribe_all(bus.consumer(names["profiles"], FAST), handler))
    publisher = bus.publisher(names["topic"])
    poison = factories.user_created(user_id=doomed)
    healthy = [factories.user_created() for _ in range(5)]

    await publisher.publish(poison)
    for event in healthy:
        await publisher.publish(event)

    await eventually(lambda: len(bus.dead_letters(names["profiles"])) == 1)
    await eventually(lambda: handler.ids() == {e.eventId for e in healthy})
    [letter] = bus.dead_letters(names["profiles"])
    assert decode(letter.message) == poison
    assert letter.reason is not None
    assert "handler failed on receive 3: RuntimeError: cannot handle user" in letter.reason
    assert handler.attempts[poison.eventId] == 3


async def test_redrive_brings_a_dead_letter_back_and_it_is_processed(
    bus: Bus, topology: Topology, names: dict[str, str], running: Callable[..., Awaitable[None]]
) -> None:
    doomed = uuid.uuid4()
    handler = Recorder(fail_for={doomed})
    await running(subscribe_all(bus.consumer(names["profiles"], FAST), handler))
    event = factories.user_created(user_id=doomed)
    await bus.publisher(names["topic"]).publish(event)
    await eventually(lambda: len(bus.dead_letters(names["profiles"])) == 1)

    handler.fail_for.clear()  # the bug is fixed
    moved = bus.redrive(names["profiles"])

    assert moved == 1
    await eventually(lambda: handler.ids() == {event.eventId})
    assert bus.dead_letters(names["profiles"]) == []


async def test_invalid_messages_go_to_the_dead_letter_queue_with_a_reason_and_never_block(
    bus: Bus, topology: Topology, names: dict[str, str], running: Callable[..., Awaitable[None]]
) -> None:
    handler = Recorder()
    await running(subscribe_all(bus.consumer(names["profiles"], FAST), handler))
    valid = factories.user_created()
    wrong_schema = json.loads(valid.model_dump_json()) | {"email": None}
    bad = {
        "not JSON": Message("{oops", {"eventType": "user.created"}),
        "wrong schema": Message(json.dumps(wrong_schema), {"eventType": "user.created"}),
        "unknown type": Message(
            json.dumps(wrong_schema | {"eventType": "user.renamed"}), {"eventType": "user.renamed"}
        ),
    }
    for message in bad.values():
        bus.send_raw(names["profiles"], message)
    await bus.publisher(names["topic"]).publish(valid)

    await eventually(lambda: len(bus.dead_letters(names["profiles"])) == 3)
    await eventually(lambda: handler.ids() == {valid.eventId})
    reasons = sorted(letter.reason or "" for letter in bus.dead_letters(names["profiles"]))
    assert reasons[0].startswith("invalid message: the body is not JSON")
    assert reasons[1] == "invalid message: unknown event type 'user.renamed'"
    assert reasons[2].startswith(
        "invalid message: user.created payload does not match its schema: /email:"
    )


@pytest.fixture
def effects_db(tmp_path: Path) -> tuple[AsyncEngine, Table, Table]:
    metadata = MetaData()
    effects = Table(
        "effects",
        metadata,
        Column("id", Integer, primary_key=True),
        Column("event_id", String(36), nullable=False),
    )
    processed = processed_events_table(metadata)
    return create_engine(f"sqlite:///{tmp_path / 'effects.db'}"), effects, processed


async def test_a_duplicate_delivery_has_one_effect(
    bus: Bus,
    topology: Topology,
    names: dict[str, str],
    running: Callable[..., Awaitable[None]],
    effects_db: tuple[AsyncEngine, Table, Table],
) -> None:
    engine, effects, processed = effects_db
    async with engine.begin() as connection:
        await connection.run_sync(effects.metadata.create_all)
    sessions = sessionmaker(engine)

    async def record_effect(event: Event, session: AsyncSession) -> None:
        await session.execute(insert(effects).values(event_id=str(event.eventId)))

    handler = IdempotentHandler("profiles", sessions, processed, record_effect)
    consumer = bus.consumer(names["profiles"], FAST)
    consumer.subscribe("user.created", handler)
    await running(consumer)
    event = factories.user_created()
    publisher = bus.publisher(names["topic"])

    for _ in range(3):
        await publisher.publish(event)  # the same event, as SNS may deliver it

    await eventually(lambda: bus.depth(names["profiles"]) == 0)
    async with sessions() as session:
        assert (await session.execute(select(func.count()).select_from(effects))).scalar() == 1
        assert (await session.execute(select(func.count()).select_from(processed))).scalar() == 1
    await engine.dispose()


async def test_stop_finishes_the_messages_in_flight_and_loses_none(
    bus: Bus, topology: Topology, names: dict[str, str], running: Callable[..., Awaitable[None]]
) -> None:
    published = [factories.user_created() for _ in range(40)]
    publisher = bus.publisher(names["topic"])
    for event in published:
        await publisher.publish(event)

    class Slow(Recorder):
        async def __call__(self, event: Event, delivery: Delivery) -> None:
            await asyncio.sleep(0.05)
            await super().__call__(event, delivery)

    first = Slow()
    consumer = subscribe_all(bus.consumer(names["profiles"], FAST), first)
    await consumer.start()
    await eventually(lambda: len(first.handled) >= 5)
    await consumer.stop()

    # Everything handled was deleted; everything else is still on the queue, visible. (Once a
    # poll that stop cut short has given back what it took: the queue's counts are approximate
    # while that happens.)
    await eventually(lambda: bus.depth(names["profiles"]) == len(published) - len(first.ids()))
    second = Recorder()
    await running(subscribe_all(bus.consumer(names["profiles"], FAST), second))
    await eventually(lambda: first.ids() | second.ids() == {e.eventId for e in published})
    assert first.ids().isdisjoint(second.ids())


async def test_each_dead_lettered_message_is_logged_once_with_its_reason(
    bus: Bus,
    topology: Topology,
    names: dict[str, str],
    running: Callable[..., Awaitable[None]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="accord.consumer")
    doomed = uuid.uuid4()
    await running(subscribe_all(bus.consumer(names["profiles"], FAST), Recorder({doomed})))
    bus.send_raw(names["profiles"], Message("{oops", {"eventType": "user.created"}))
    await bus.publisher(names["topic"]).publish(factories.user_created(user_id=doomed))

    await eventually(lambda: len(bus.dead_letters(names["profiles"])) == 2)
    await eventually(lambda: len(dead_letter_lines(caplog)) == 2)

    reasons = sorted(letter.reason or "" for letter in bus.dead_letters(names["profiles"]))
    assert reasons[0] == f"handler failed on receive 3: RuntimeError: cannot handle user {doomed}"
    assert reasons[1].startswith("invalid message: the body is not JSON")
    lines = sorted(dead_letter_lines(caplog), key=lambda line: line.split(": ", 1)[1])
    for line, reason in zip(lines, reasons, strict=True):
        assert line.startswith("dead-lettered user.created ")
        assert line.endswith(f" from {names['profiles']}: {reason}")


def dead_letter_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    """The lines the consumer logged about dead letters (one per message is expected)."""
    return [
        record.getMessage()
        for record in caplog.records
        if record.name == "accord.consumer" and "dead-letter" in record.getMessage()
    ]


@pytest.mark.emulator
async def test_a_long_poll_that_stop_left_pending_gives_back_what_it_takes_at_once(
    moto_endpoint: str, names: dict[str, str]
) -> None:
    bus = MotoBus(moto_endpoint)
    bus.provision(
        Topology(
            topics=(),
            queues=(
                QueueSpec(names["profiles-dlq"]),
                # A long visibility timeout: a message not given back would stay hidden.
                QueueSpec(names["profiles"], 600, 0, 345_600, names["profiles-dlq"], 3),
            ),
            subscriptions=(),
        )
    )
    handler = Recorder()
    consumer = subscribe_all(
        bus.consumer(names["profiles"], ConsumerOptions(wait_seconds=20)), handler
    )
    await consumer.start()
    await eventually(lambda: bool(receive_threads(names["profiles"])))

    await consumer.stop()

    # Stop returned while the poll is still waiting on SQS: it did not wait for it, and the
    # poll's thread is a daemon, which the process's exit does not wait for either.
    [poll] = receive_threads(names["profiles"])
    assert poll.daemon
    event = factories.user_created()
    bus.send_raw(names["profiles"], encode(event))  # the pending poll takes it ...
    await asyncio.to_thread(poll.join, 30)
    [given_back] = await bus.receive_raw(names["profiles"])  # ... and gave it back at once
    assert decode(given_back.message) == event
    assert given_back.receive_count == 2
    assert handler.handled == []


def receive_threads(queue: str) -> list[threading.Thread]:
    return [
        thread
        for thread in threading.enumerate()
        if thread.name == f"sqs-receive:{queue}" and thread.is_alive()
    ]


async def test_an_invalid_event_raises_on_publish_and_reaches_no_queue(
    bus: Bus, topology: Topology, names: dict[str, str]
) -> None:
    event = factories.user_created()
    event.email = "a" * 255 + "@example.com"  # generated models do not validate assignment

    with pytest.raises(InvalidEventError):
        await bus.publisher(names["topic"]).publish(event)

    assert bus.depth(names["profiles"]) == 0
    assert bus.depth(names["mail"]) == 0
