"""The in-memory broker keeps SQS's delivery semantics, driven here by a fake clock."""

from __future__ import annotations

import pytest

from services.kit.events import Message
from services.kit.memory import InMemoryBroker, UnknownResourceError, matches
from services.kit.topology import QueueSpec, SubscriptionSpec, TopicSpec, Topology


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def broker(clock: Clock) -> InMemoryBroker:
    broker = InMemoryBroker(clock)
    broker.apply(
        Topology(
            (TopicSpec("events"),),
            (QueueSpec("work-dlq"), QueueSpec("work", 30, 0, 60, "work-dlq", 2)),
            (SubscriptionSpec("events", "work", {"eventType": [{"prefix": "user."}]}),),
        )
    )
    return broker


def test_an_unacknowledged_message_comes_back_after_its_visibility_timeout(
    broker: InMemoryBroker, clock: Clock
) -> None:
    broker.send("work", Message("{}", {"eventType": "user.created"}))

    [first] = broker.receive_now("work", 10)
    assert broker.receive_now("work", 10) == []  # hidden while in flight
    clock.now += 31
    [again] = broker.receive_now("work", 10)

    assert again.message_id == first.message_id
    assert (first.receive_count, again.receive_count) == (1, 2)
    assert again.receipt != first.receipt


def test_a_message_received_too_often_moves_to_the_dead_letter_queue(
    broker: InMemoryBroker, clock: Clock
) -> None:
    broker.send("work", Message("{}", {"eventType": "user.created"}))
    for _ in range(2):
        assert len(broker.receive_now("work", 10)) == 1
        clock.now += 31

    assert broker.receive_now("work", 10) == []
    [letter] = broker.dead_letters("work")
    assert letter.receive_count == 2
    assert letter.reason is None  # moved by the redrive policy, not by a consumer


def test_a_deleted_message_is_gone_and_a_stale_receipt_deletes_nothing(
    broker: InMemoryBroker, clock: Clock
) -> None:
    broker.send("work", Message("{}"))
    [first] = broker.receive_now("work", 10)
    clock.now += 31
    [second] = broker.receive_now("work", 10)

    broker.delete("work", [first.receipt])
    assert broker.depth("work") == 1
    broker.delete("work", [second.receipt])
    assert broker.depth("work") == 0


def test_a_prefix_filter_lets_matching_event_types_through(broker: InMemoryBroker) -> None:
    broker.publish("events", Message("{}", {"eventType": "user.created"}))
    broker.publish("events", Message("{}", {"eventType": "order.placed"}))
    broker.publish("events", Message("{}", {}))

    assert broker.depth("work") == 1


def test_an_unsupported_filter_condition_is_refused_when_subscribing(
    broker: InMemoryBroker,
) -> None:
    with pytest.raises(ValueError, match="unsupported filter policy condition"):
        broker.subscribe(SubscriptionSpec("events", "work", {"eventType": [{"numeric": [">", 1]}]}))


def test_publishing_to_an_unknown_topic_is_a_clear_error(broker: InMemoryBroker) -> None:
    with pytest.raises(UnknownResourceError, match="no topic named 'nope'"):
        broker.publish("nope", Message("{}"))


@pytest.mark.parametrize(
    ("policy", "attributes", "expected"),
    [
        ({}, {}, True),
        ({"eventType": ["a", "b"]}, {"eventType": "b"}, True),
        ({"eventType": ["a"]}, {"eventType": "b"}, False),
        ({"eventType": "a"}, {"eventType": "a"}, True),
        ({"eventType": ["a"], "source": ["s"]}, {"eventType": "a"}, False),
    ],
)
def test_filter_policies_match_as_sns_does(
    policy: dict[str, object], attributes: dict[str, str], expected: bool
) -> None:
    assert matches(policy, attributes) is expected


def test_retry_delays_double_from_the_base_up_to_the_cap() -> None:
    from services.kit.consumer import Backoff

    backoff = Backoff(base=2, cap=30)

    assert [backoff.delay(n) for n in range(1, 7)] == [2, 4, 8, 16, 30, 30]
