"""The harness catches consumers that are wrong on purpose, and reports the smallest stream
that shows the fault: a consumer that is not idempotent, and one whose final state depends on
the order of delivery."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator

import pytest
from hypothesis import HealthCheck, given, settings

from generated.events import models as events
from harness.replay.buses import ReplayBus
from harness.replay.generate import CREATED, DEACTIVATED, VERIFICATION, streams
from harness.replay.runner import Subject, check
from harness.replay.schedule import Adversity, Order, Step
from services.kit.bus import Delivery, EventConsumer
from services.kit.events import Event, Message, decode
from tests import factories


class WelcomeMailer:
    """Not idempotent: sends a welcome email for every `user.created` it is handed, copies
    included (it keeps no record of the events it has handled)."""

    name = "welcome mailer"

    def __call__(self) -> contextlib.AbstractAsyncContextManager[Subject]:
        return self._open()

    @contextlib.asynccontextmanager
    async def _open(self) -> AsyncIterator[Subject]:
        outbox: list[tuple[str, str]] = []

        async def on_created(event: Event, delivery: Delivery) -> None:
            assert isinstance(event, events.UserCreatedPayload)
            outbox.append((str(event.userId), str(event.email)))

        def attach(consumer: EventConsumer) -> None:
            consumer.subscribe(CREATED, on_created)

        async def read_state() -> object:
            return sorted(outbox)

        yield Subject(self.name, (CREATED,), attach, read_state)


class LastEventWins:
    """Order-dependent: a user's status is whatever the last event handled says, whatever
    its `sequence` (idempotent, so duplicates in order do no harm)."""

    name = "last event wins"

    def __call__(self) -> contextlib.AbstractAsyncContextManager[Subject]:
        return self._open()

    @contextlib.asynccontextmanager
    async def _open(self) -> AsyncIterator[Subject]:
        status: dict[str, str] = {}

        async def on_event(event: Event, delivery: Delivery) -> None:
            status[str(event.userId)] = "active" if event.eventType == CREATED else "deactivated"

        def attach(consumer: EventConsumer) -> None:
            consumer.subscribe(CREATED, on_event)
            consumer.subscribe(DEACTIVATED, on_event)

        async def read_state() -> object:
            return dict(status)

        yield Subject(self.name, (CREATED, DEACTIVATED), attach, read_state)


def histories(users: int) -> tuple[list[Event], list[list[Event]]]:
    """Each user created, asked to verify, deactivated; the users' events interleaved."""
    per_user: list[list[Event]] = []
    for _ in range(users):
        user = uuid.uuid4()
        email = f"u{user.hex[:8]}@example.com"
        per_user.append(
            [
                factories.user_created(user, sequence=1, email=email),
                factories.verification_requested(user, sequence=2, email=email),
                factories.user_deactivated(user, sequence=3, email=email),
            ]
        )
    stream: list[Event] = [history[i] for i in range(3) for history in per_user]
    return stream, per_user


async def test_a_consumer_that_is_not_idempotent_is_caught_with_one_event_delivered_twice(
    bus: ReplayBus,
) -> None:
    stream, _ = histories(users=3)

    verdict = await check(
        stream, WelcomeMailer(), Adversity(duplicates=3, order="shuffled", seed=3), bus=bus
    )

    assert verdict.finding is not None, verdict.explain()
    minimal = verdict.finding
    [event] = minimal.events()
    assert isinstance(event, events.UserCreatedPayload)
    assert event in stream
    assert minimal.deliveries() == [event, event]
    assert minimal.schedule.steps == (Step(0), Step(0))
    [difference] = minimal.differences
    welcome = (str(event.userId), str(event.email))
    assert (difference.path, difference.clean, difference.adverse) == (
        "/state",
        [welcome],
        [welcome, welcome],
    )


async def test_a_crash_between_effect_and_acknowledgement_shows_a_missing_idempotency_key() -> None:
    stream, _ = histories(users=3)

    verdict = await check(stream, WelcomeMailer(), Adversity(crash_rate=0.5, seed=1))

    assert verdict.finding is not None, verdict.explain()
    [event] = verdict.finding.events()
    assert isinstance(event, events.UserCreatedPayload)
    # One publish suffices: the crash makes the bus deliver it again after its effect.
    assert verdict.finding.schedule.steps == (Step(0, crash=True),)


async def test_an_order_dependent_consumer_is_caught_with_one_users_two_events_reversed() -> None:
    stream, per_user = histories(users=3)

    verdict = await check(
        stream, LastEventWins(), Adversity(duplicates=2, order="shuffled", seed=5), runs=5
    )

    assert verdict.finding is not None, verdict.explain()
    minimal = verdict.finding
    assert len(minimal.events()) == 2
    created, deactivated = minimal.events()
    assert [created, deactivated] in [[history[0], history[2]] for history in per_user]
    assert minimal.deliveries() == [deactivated, created]
    assert isinstance(created, events.UserCreatedPayload)
    assert [(d.path, d.clean, d.adverse) for d in minimal.differences] == [
        (f"/state/{created.userId}", "deactivated", "active")
    ]


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(stream=streams(users=(1, 4), max_requests=2))
async def test_any_stream_with_a_deactivated_user_shrinks_to_that_users_two_events(
    stream: list[Event],
) -> None:
    finished = {
        e.userId
        for e in stream
        if e.eventType == DEACTIVATED
        and any(c.eventType == CREATED and c.userId == e.userId for c in stream)
    }

    verdict = await check(stream, LastEventWins(), Adversity(order="reversed"))

    if not finished:
        assert verdict.ok, verdict.explain()
        return
    assert verdict.finding is not None, verdict.explain()
    created, deactivated = verdict.finding.events()
    assert isinstance(created, events.UserCreatedPayload)
    assert isinstance(deactivated, events.UserDeactivatedPayload)
    assert created.userId == deactivated.userId
    assert created.userId in finished
    assert verdict.finding.deliveries() == [deactivated, created]


ORDERS: list[Order] = ["shuffled", "interleaved", "reversed"]


@pytest.mark.parametrize("order", ORDERS)
async def test_an_idempotent_order_independent_consumer_shows_no_difference(order: Order) -> None:
    # The same subject as the caught one, minus the fault: a stream that never asks it to
    # choose between two events about one user. Guards against a harness that cries wolf.
    users = [uuid.uuid4() for _ in range(5)]
    stream: list[Event] = [factories.user_created(user) for user in users]

    verdict = await check(
        stream,
        LastEventWins(),
        Adversity(duplicates=3, order=order, crash_rate=0.3, seed=11),
        runs=3,
    )

    assert verdict.ok, verdict.explain()
    assert verdict.crashes > 0
    assert verdict.duplicates_absorbed == verdict.runs * 5 * 2 + verdict.crashes


async def test_events_it_does_not_take_are_never_part_of_the_minimal_stream() -> None:
    stream, _ = histories(users=2)
    assert any(e.eventType == VERIFICATION for e in stream)

    verdict = await check(stream, WelcomeMailer(), Adversity(duplicates=2))

    assert verdict.finding is not None
    [event] = verdict.finding.events()
    assert isinstance(event, events.UserCreatedPayload)


async def test_when_the_right_final_state_is_known_shrinking_needs_no_clean_run() -> None:
    stream, _ = histories(users=3)

    def one_welcome_each(stream: tuple[Message, ...]) -> object:
        created = [e for e in map(decode, stream) if isinstance(e, events.UserCreatedPayload)]
        return sorted((str(e.userId), str(e.email)) for e in created)

    verdict = await check(
        stream, WelcomeMailer(), Adversity(duplicates=2, seed=4), expected=one_welcome_each
    )

    assert verdict.finding is not None
    [event] = verdict.finding.events()
    assert isinstance(event, events.UserCreatedPayload)
    assert verdict.finding.schedule.steps == (Step(0), Step(0))
