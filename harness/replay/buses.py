"""Where a replay runs: the in-memory bus, or SNS/SQS at an endpoint (moto server, LocalStack).

Each run gets a private *lane*: its own topic, and a queue with a dead-letter queue subscribed
to it through a filter policy on the event types the consumer takes, so runs never see each
other's messages and one emulator can serve many runs (and tests) at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import uuid
from collections.abc import AsyncIterator, Collection, Sequence
from typing import TYPE_CHECKING, Protocol

from harness.bus.dlq import DeadLetterQueue
from services.kit.aws import BusLocation
from services.kit.bus import DeadLetter, MessageQueue
from services.kit.events import Message
from services.kit.memory import InMemoryBroker, InMemoryQueue
from services.kit.sqs import SqsQueue
from services.kit.topology import QueueSpec, SubscriptionSpec, TopicSpec, Topology

if TYPE_CHECKING:
    from mypy_boto3_sns import SNSClient
    from mypy_boto3_sqs import SQSClient

MAX_RECEIVES = 5  # as the AsyncAPI bindings declare for the services' queues
SNS_BATCH = 10  # the most one SNS PublishBatch takes


class Lane(Protocol):
    """One run's topic and queue (with its dead-letter queue)."""

    topic: str
    queue_name: str
    # True when a crashed message must be made visible by the harness (no real timeout).
    releases_crashes: bool
    # How long the consumer's receive waits for a message, and, when set, how often it polls
    # meanwhile (short polls instead of a long poll, which a stop would have to wait out).
    wait_seconds: float
    short_poll: float | None
    # How often to look at the queue's depth while waiting for it to drain.
    poll_seconds: float

    def queue(self) -> MessageQueue: ...

    async def publish(self, messages: Sequence[Message]) -> None: ...

    async def depth(self) -> int:
        """Messages in the queue, visible or in flight."""
        ...

    async def dead_letters(self) -> list[DeadLetter]: ...


class ReplayBus(Protocol):
    """Makes lanes."""

    name: str

    def lane(self, event_types: Collection[str]) -> contextlib.AbstractAsyncContextManager[Lane]:
        """A fresh lane whose queue receives `event_types` (all, if empty)."""
        ...


def _lane_topology(
    topic: str, queue: str, event_types: Collection[str], visibility: int
) -> Topology:
    policy = {"eventType": sorted(event_types)} if event_types else {}
    return Topology(
        topics=(TopicSpec(topic),),
        queues=(
            QueueSpec(queue + "-dlq"),
            QueueSpec(queue, visibility, 0, 345_600, queue + "-dlq", MAX_RECEIVES),
        ),
        subscriptions=(SubscriptionSpec(topic, queue, policy),),
    )


# --- in memory ------------------------------------------------------------------------------


class MemoryLane:
    """A lane on its own `InMemoryBroker`."""

    releases_crashes = True
    wait_seconds = 0.01
    short_poll: float | None = None
    poll_seconds = 0.002

    def __init__(self, event_types: Collection[str]) -> None:
        self.topic, self.queue_name = "replay-topic", "replay-queue"
        self.broker = InMemoryBroker()
        self.broker.apply(_lane_topology(self.topic, self.queue_name, event_types, 30))

    def queue(self) -> MessageQueue:
        return InMemoryQueue(self.broker, self.queue_name)

    async def publish(self, messages: Sequence[Message]) -> None:
        for message in messages:
            self.broker.publish(self.topic, message)

    async def depth(self) -> int:
        return self.broker.depth(self.queue_name)

    async def dead_letters(self) -> list[DeadLetter]:
        return self.broker.dead_letters(self.queue_name)


class MemoryReplayBus:
    """Runs on the kit's in-memory bus (SNS/SQS semantics in one process)."""

    name = "memory"

    @contextlib.asynccontextmanager
    async def lane(self, event_types: Collection[str]) -> AsyncIterator[Lane]:
        yield MemoryLane(event_types)


# --- SNS/SQS --------------------------------------------------------------------------------


def publish_batch(sns: SNSClient, topic_arn: str, messages: Sequence[Message]) -> None:
    """Publish messages to a topic, ten per call (blocking)."""
    for start in range(0, len(messages), SNS_BATCH):
        chunk = messages[start : start + SNS_BATCH]
        response = sns.publish_batch(
            TopicArn=topic_arn,
            PublishBatchRequestEntries=[
                {
                    "Id": str(number),
                    "Message": message.body,
                    "MessageAttributes": {
                        name: {"DataType": "String", "StringValue": value}
                        for name, value in message.attributes.items()
                    },
                }
                for number, message in enumerate(chunk)
            ],
        )
        failed = response.get("Failed", [])
        if failed:
            raise RuntimeError(f"SNS refused {len(failed)} messages: {failed[0].get('Message')}")


def queue_depth(sqs: SQSClient, url: str) -> int:
    """Visible plus in-flight messages of a queue (blocking)."""
    attributes = sqs.get_queue_attributes(
        QueueUrl=url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]) + int(
        attributes["ApproximateNumberOfMessagesNotVisible"]
    )


class SqsLane:
    """A lane of private SNS/SQS resources at an endpoint, removed when the lane closes."""

    releases_crashes = False
    wait_seconds = 1.0
    short_poll: float | None = 0.02
    poll_seconds = 0.05

    def __init__(
        self, sns: SNSClient, sqs: SQSClient, name: str, topic_arn: str, urls: tuple[str, str]
    ) -> None:
        self.sns, self.sqs = sns, sqs
        self.topic = self.queue_name = name
        self.topic_arn = topic_arn
        self.url, self.dead_letter_url = urls

    def queue(self) -> MessageQueue:
        return SqsQueue(self.sqs, self.queue_name)

    async def publish(self, messages: Sequence[Message]) -> None:
        await asyncio.to_thread(publish_batch, self.sns, self.topic_arn, messages)

    async def depth(self) -> int:
        return await asyncio.to_thread(queue_depth, self.sqs, self.url)

    async def dead_letters(self) -> list[DeadLetter]:
        return await asyncio.to_thread(lambda: DeadLetterQueue(self.sqs, self.queue_name).peek())

    def remove(self) -> None:
        # Best effort: a lane left behind costs the emulator memory, not correctness.
        with contextlib.suppress(Exception):
            self.sns.delete_topic(TopicArn=self.topic_arn)
        for url in (self.url, self.dead_letter_url):
            with contextlib.suppress(Exception):
                self.sqs.delete_queue(QueueUrl=url)


class SqsReplayBus:
    """Runs through SNS and SQS at an endpoint: publishes to a topic, consumes from a queue.

    `visibility_timeout` is the lane queue's: a crashed message comes back after it, so keep
    it short (seconds), but longer than a handler takes, or slow handlings are redelivered
    too (harmless for an idempotent consumer, but counted as duplicates).
    """

    name = "sqs"

    def __init__(
        self, location: BusLocation | str, prefix: str = "", visibility_timeout: int = 2
    ) -> None:
        self.location = (
            location if isinstance(location, BusLocation) else BusLocation("endpoint", location)
        )
        self.prefix = prefix
        self.visibility_timeout = visibility_timeout
        self.sns = self.location.sns()
        self.sqs = self.location.sqs()
        self._numbers = itertools.count(1)

    @contextlib.asynccontextmanager
    async def lane(self, event_types: Collection[str]) -> AsyncIterator[Lane]:
        name = f"{self.prefix}replay-{next(self._numbers)}-{uuid.uuid4().hex[:6]}"
        lane = await asyncio.to_thread(self._create, name, event_types)
        try:
            yield lane
        finally:
            await asyncio.to_thread(lane.remove)

    def _create(self, name: str, event_types: Collection[str]) -> SqsLane:
        """The lane's topic, queue, dead-letter queue and subscription: the few calls that make
        them (a run makes a lane, so `accord provision`'s checks of what exists would cost)."""
        topology = _lane_topology(name, name, event_types, self.visibility_timeout)
        spec = topology.queue(name)
        topic_arn = self.sns.create_topic(Name=name)["TopicArn"]
        dead_url = self.sqs.create_queue(QueueName=f"{name}-dlq")["QueueUrl"]
        dead_arn = self.sqs.get_queue_attributes(QueueUrl=dead_url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        redrive = {"deadLetterTargetArn": dead_arn, "maxReceiveCount": spec.max_receives}
        url = self.sqs.create_queue(
            QueueName=name,
            Attributes={
                "VisibilityTimeout": str(spec.visibility_timeout),
                "RedrivePolicy": json.dumps(redrive),
            },
        )["QueueUrl"]
        queue_arn = self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        [subscription] = topology.subscriptions
        self.sns.subscribe(
            TopicArn=topic_arn,
            Protocol="sqs",
            Endpoint=queue_arn,
            Attributes={
                "RawMessageDelivery": "true",
                "FilterPolicy": json.dumps(subscription.filter_policy),
            },
        )
        return SqsLane(self.sns, self.sqs, name, topic_arn, (url, dead_url))
