"""Planning deliveries and shrinking them, on their own: which publishes an adversity makes,
and how delta debugging and the state comparison report."""

from __future__ import annotations

import uuid
from collections import Counter

from harness.replay.runner import ABSENT, Difference, ddmin, differences, minimise
from harness.replay.schedule import (
    Adversity,
    Schedule,
    Step,
    distinct_orders,
    plan,
    plans,
    poison_message,
)
from harness.replay.stream import to_messages, user_id
from services.kit.events import Event, Message
from tests import factories


def three_users() -> tuple[Message, ...]:
    events: list[Event] = []
    for _ in range(3):
        user = uuid.uuid4()
        events += [factories.user_created(user, 1), factories.user_deactivated(user, 2)]
    return to_messages(events)


def test_a_small_shuffled_stream_is_tried_in_every_distinct_order_once() -> None:
    stream = three_users()[:3]

    schedules = list(plans(stream, Adversity(duplicates=2, order="shuffled"), runs=1))

    orders = [tuple(step.item for step in schedule.steps) for schedule in schedules]
    assert len(orders) == len(set(orders)) == distinct_orders(3, 2) == 90
    assert all(Counter(order) == {0: 2, 1: 2, 2: 2} for order in orders)


def test_a_larger_shuffled_stream_gets_as_many_random_orders_as_runs_asked() -> None:
    stream = three_users()

    schedules = list(plans(stream, Adversity(duplicates=2, order="shuffled"), runs=4))

    assert len(schedules) == 4
    assert len({tuple(s.steps) for s in schedules}) == 4
    assert all(len(s.steps) == 12 for s in schedules)


def test_interleaving_mixes_users_but_keeps_each_users_events_in_order() -> None:
    stream = three_users()

    for seed in range(20):
        schedule = plan(stream, Adversity(duplicates=2, order="interleaved", seed=seed))
        for user in {user_id(m) for m in stream}:
            mine = [s.item for s in schedule.steps if user_id(stream[s.item]) == user]
            assert mine == sorted(mine)


def test_the_poison_goes_in_the_middle_once_and_never_crashes() -> None:
    stream = three_users()
    poison = poison_message("not-json")

    schedule = plan(stream, Adversity(duplicates=3, crash_rate=0.9, poison=poison, seed=1))

    assert schedule.poison == 3
    assert schedule.stream[3] == poison
    assert [s for s in schedule.steps if s.item == 3] == [Step(3)]
    assert schedule.clean_counterpart().stream == stream


def test_the_crash_rate_is_the_share_of_publishes_that_crash() -> None:
    stream = three_users()

    schedule = plan(stream, Adversity(duplicates=200, crash_rate=0.25, seed=9))

    assert len(schedule.steps) == 1200
    assert 240 <= schedule.crashes <= 360


def test_restricting_a_schedule_keeps_the_order_of_what_remains() -> None:
    stream = three_users()
    schedule = Schedule(stream, (Step(5), Step(0, crash=True), Step(2), Step(5), Step(0)))

    smaller = schedule.restricted([0, 5])

    assert smaller.stream == (stream[0], stream[5])
    assert smaller.steps == (Step(1), Step(0, crash=True), Step(1), Step(0))
    assert smaller.covers_stream()


async def test_delta_debugging_finds_the_two_values_that_together_fail() -> None:
    async def fails(values: list[int]) -> bool:
        return 3 in values and 17 in values

    assert await ddmin(list(range(40)), fails) == [3, 17]


async def test_shrinking_drops_every_delay_and_crash_the_failure_does_not_need() -> None:
    stream = three_users()[:1]
    schedule = Schedule(stream, (Step(0, crash=True, delay=0.5), Step(0, crash=True, delay=0.3)))

    async def test(candidate: Schedule) -> list[Difference]:
        fails = len(candidate.steps) == 2 and candidate.steps[0].crash
        return [Difference("/state", "clean", "adverse")] if fails else []

    minimal, _ = await minimise(schedule, test)

    assert minimal.steps == (Step(0, crash=True), Step(0))


async def test_shrinking_trusts_the_known_failure_of_the_schedule_it_starts_from() -> None:
    stream = three_users()[:2]
    schedule = Schedule(stream, (Step(0), Step(1), Step(0)))
    found = [Difference("/state", "clean", "adverse")]
    tried: list[Schedule] = []

    async def test(candidate: Schedule) -> list[Difference]:
        tried.append(candidate)  # a flaky failure: no candidate fails again
        return []

    minimal, differences_found = await minimise(schedule, test, known=found)

    assert (minimal, differences_found) == (schedule, found)
    assert schedule not in tried


def test_differences_name_the_path_of_each_change() -> None:
    clean = {"profiles": {"a": {"status": "deactivated", "email": None}}, "sent": [1, 2]}
    adverse = {"profiles": {"a": {"status": "active", "email": None}, "b": {}}, "sent": [1, 2, 2]}

    assert differences(clean, adverse) == [
        Difference("/profiles/a/status", "deactivated", "active"),
        Difference("/profiles/b", ABSENT, {}),
        Difference("/sent", [1, 2], [1, 2, 2]),
    ]
