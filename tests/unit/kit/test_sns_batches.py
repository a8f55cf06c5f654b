"""`SnsEventPublisher.publish_batch`: one PublishBatch call for ten messages, each entry with the
same message attributes as a single Publish, and each entry's answer reported on its own (a
`Failed` entry, or one SNS left out, is not accepted). The SNS client here is a stand-in that
records the calls and answers as told; the real thing is tested on a moto server
(tests/integration/test_relay_batches.py)."""

from __future__ import annotations

from typing import Any

from services.kit.events import Message, encode
from services.kit.sns import PUBLISH_BATCH_BYTES, PublishRefusedError, SnsEventPublisher
from tests import factories

TOPIC = "arn:aws:sns:us-east-1:123456789012:accord-user-events"


class RecordingSns:
    """Records Publish and PublishBatch calls; refuses the entries whose Id is in `fail` and
    leaves out of its answer those in `forget`."""

    def __init__(self, *, fail: set[str] | None = None, forget: set[str] | None = None) -> None:
        self.fail = fail or set()
        self.forget = forget or set()
        self.published: list[dict[str, Any]] = []
        self.batches: list[list[dict[str, Any]]] = []

    def publish(self, **call: Any) -> dict[str, Any]:
        self.published.append(call)
        return {"MessageId": "m"}

    def publish_batch(self, **call: Any) -> dict[str, Any]:
        assert call["TopicArn"] == TOPIC
        entries = call["PublishBatchRequestEntries"]
        self.batches.append(entries)
        return {
            "Successful": [
                {"Id": e["Id"], "MessageId": "m"}
                for e in entries
                if e["Id"] not in self.fail | self.forget
            ],
            "Failed": [
                {"Id": e["Id"], "Code": "Throttled", "Message": "slow down", "SenderFault": False}
                for e in entries
                if e["Id"] in self.fail
            ],
        }


class BrokenSns(RecordingSns):
    def publish_batch(self, **call: Any) -> dict[str, Any]:
        raise ConnectionError("SNS is unreachable")


def messages(count: int) -> list[Message]:
    return [encode(factories.user_created()) for _ in range(count)]


async def test_each_batch_entry_carries_the_attributes_a_single_publish_gives() -> None:
    sns = RecordingSns()
    publisher = SnsEventPublisher(sns, TOPIC)  # type: ignore[arg-type]
    [message] = messages(1)

    await publisher.publish_message(message)
    outcomes = await publisher.publish_batch([message])

    assert outcomes == [None]
    [[entry]] = sns.batches
    [single] = sns.published
    assert entry["Message"] == single["Message"] == message.body
    assert entry["MessageAttributes"] == single["MessageAttributes"]
    assert entry["MessageAttributes"]["eventType"] == {
        "DataType": "String",
        "StringValue": "user.created",
    }


async def test_failed_and_unanswered_entries_are_reported_and_only_they() -> None:
    sns = RecordingSns(fail={"1", "4"}, forget={"7"})
    publisher = SnsEventPublisher(sns, TOPIC)  # type: ignore[arg-type]

    outcomes = await publisher.publish_batch(messages(10))

    assert len(sns.batches) == 1
    refused = {index: error for index, error in enumerate(outcomes) if error is not None}
    assert set(refused) == {1, 4, 7}
    assert isinstance(refused[1], PublishRefusedError)
    assert str(refused[1]) == "Throttled: slow down"
    assert isinstance(refused[7], PublishRefusedError)
    assert refused[7].code == "NoAnswer"


async def test_a_call_that_fails_as_a_whole_refuses_each_of_its_entries() -> None:
    publisher = SnsEventPublisher(BrokenSns(), TOPIC)  # type: ignore[arg-type]

    outcomes = await publisher.publish_batch(messages(3))

    assert [type(outcome) for outcome in outcomes] == [ConnectionError] * 3


async def test_more_than_ten_messages_or_256_kib_go_in_several_calls() -> None:
    sns = RecordingSns()
    publisher = SnsEventPublisher(sns, TOPIC)  # type: ignore[arg-type]
    big = Message("x" * (PUBLISH_BATCH_BYTES // 3), {"eventType": "user.created"})

    many = await publisher.publish_batch(messages(23))
    sizes_by_count = [len(batch) for batch in sns.batches]
    sns.batches.clear()
    large = await publisher.publish_batch([big] * 4)

    assert many == [None] * 23
    assert sizes_by_count == [10, 10, 3]
    assert large == [None] * 4
    assert [len(batch) for batch in sns.batches] == [2, 2]  # three would pass 256 KiB
