"""At scale through a real moto server: 2,000 events published to SNS, each three times in a
random order, consumed from SQS by the kit's consumer with an idempotent effect, the consumer
crashing between effect and acknowledgement on 5% of the deliveries. Nothing is lost and no
effect happens twice."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, func, insert, select

from harness.replay.buses import SqsReplayBus
from harness.replay.runner import Subject, check
from harness.replay.schedule import Adversity
from harness.replay.stream import event_id
from services.kit.bus import Delivery, EventConsumer
from services.kit.database import AsyncSession, create_engine, sessionmaker
from services.kit.events import Event, Message
from services.kit.idempotency import IdempotentHandler, processed_events_table
from tests import factories

EVENTS = 2_000


class EffectLog:
    """An idempotent consumer of `user.created` whose effect is a row per application, so a
    lost event shows as no row and a double effect as two (SQLite, through the kit's
    `IdempotentHandler`)."""

    name = "effect log"

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.absorbed = 0  # handlings the idempotent handler turned away

    def __call__(self) -> contextlib.AbstractAsyncContextManager[Subject]:
        return self._open()

    @contextlib.asynccontextmanager
    async def _open(self) -> AsyncIterator[Subject]:
        metadata = MetaData()
        effects = Table(
            "effects",
            metadata,
            Column("id", Integer, primary_key=True),
            Column("event_id", String(36), nullable=False),
        )
        processed = processed_events_table(metadata)
        engine = create_engine(f"sqlite:///{self.directory / f'{uuid.uuid4().hex}.db'}")
        async with engine.begin() as connection:
            await connection.run_sync(metadata.create_all)

        async def effect(event: Event, session: AsyncSession) -> None:
            await session.execute(insert(effects).values(event_id=str(event.eventId)))

        handler = IdempotentHandler("effect-log", sessionmaker(engine), processed, effect)
        one_writer = asyncio.Lock()  # SQLite takes one writer at a time

        async def on_created(event: Event, delivery: Delivery) -> None:
            async with one_writer:
                if not await handler.apply(event):
                    self.absorbed += 1

        def attach(consumer: EventConsumer) -> None:
            consumer.subscribe("user.created", on_created)

        async def read_state() -> object:
            async with engine.connect() as connection:
                rows = await connection.execute(
                    select(effects.c.event_id, func.count()).group_by(effects.c.event_id)
                )
                return {str(event_id): int(count) for event_id, count in rows.all()}

        try:
            yield Subject(self.name, ("user.created",), attach, read_state)
        finally:
            await engine.dispose()


def one_effect_each(stream: tuple[Message, ...]) -> object:
    return {str(event_id(message)): 1 for message in stream}


@pytest.mark.emulator
async def test_two_thousand_events_thrice_shuffled_with_crashes_lose_nothing_and_double_nothing(
    moto_endpoint: str, unique_prefix: str, tmp_path: Path
) -> None:
    stream = [factories.user_created(email=f"u{n}@example.com") for n in range(EVENTS)]
    subject = EffectLog(tmp_path)
    bus = SqsReplayBus(moto_endpoint, prefix=unique_prefix, visibility_timeout=1)
    adversity = Adversity(duplicates=3, order="shuffled", crash_rate=0.05, concurrency=10, seed=42)
    started = time.monotonic()

    verdict = await check(
        stream,
        subject,
        adversity,
        bus=bus,
        expected=one_effect_each,
        shrink=False,  # a difference is reported as it is: shrinking 6,000 deliveries is slow
        window=25,  # moto copies its queue for every message it returns: keep the backlog small
        timeout=120,
    )

    seconds = time.monotonic() - started
    [result] = verdict.results
    effects = result.state
    assert isinstance(effects, dict)
    lost = EVENTS - len(effects)
    doubled = sum(1 for count in effects.values() if count > 1)
    print(
        f"\n{EVENTS} events, {verdict.deliveries} deliveries published, {verdict.handled} "
        f"handled, {verdict.duplicates_absorbed} duplicates absorbed, {verdict.crashes} "
        f"crashes, {lost} lost, {doubled} double effects, {seconds:.1f} s"
    )
    assert verdict.ok, verdict.explain()
    assert (lost, doubled) == (0, 0)
    assert verdict.deliveries == 3 * EVENTS
    assert verdict.crashes >= 200  # 5% of 6,000, give or take
    assert result.receives >= 3 * EVENTS + verdict.crashes  # each crash brings one back
    assert subject.absorbed == verdict.duplicates_absorbed == result.receives - EVENTS
    assert verdict.dead_letters == ()
