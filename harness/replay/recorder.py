"""Recording every event that crosses a topic into a stream file (JSONL, `harness.replay.stream`).

The recorder is one more subscriber of the topic: its own queue, subscribed with raw delivery
and *no* filter policy, so it receives every message any consumer could, with its message
attributes, and disturbs no one. A background task drains the queue into the file, a line per
message, flushed as it goes; `stop()` drains what is left, closes the file and removes the
queue and its subscription. Lines are in the order the recorder received the messages.

    recorder = await Recorder.on_topic("http://127.0.0.1:4566", "accord-user-events", path)
    await recorder.start()
    ...                       # the platform runs; every event lands in `path`
    await recorder.stop()     # or: async with recorder: ...

`accord up --record FILE` starts one right after provisioning (the topic's name from
`harness.bus.provision.topology_from_contracts`), and stops it before the emulator. In memory,
`Recorder.in_memory(broker, topic, path)` does the same on an `InMemoryBroker`.
`RecordingPublisher` is the other way round: it wraps a publisher and writes what it publishes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Self

from harness.bus.provision import Provisioner
from harness.replay.stream import StreamWriter
from services.kit.aws import BusLocation
from services.kit.bus import EventPublisher, MessageQueue, publish_batch
from services.kit.events import Event, Message, encode
from services.kit.memory import InMemoryBroker, InMemoryQueue
from services.kit.sns import SnsEventPublisher
from services.kit.sqs import SqsQueue
from services.kit.topology import QueueSpec, SubscriptionSpec, TopicSpec, Topology

if TYPE_CHECKING:
    from mypy_boto3_sns import SNSClient
    from mypy_boto3_sqs import SQSClient

log = logging.getLogger("accord.replay.recorder")

Cleanup = Callable[[], Awaitable[None]]


class Recorder:
    """Drains a queue that receives every event of a topic into a stream file."""

    def __init__(
        self,
        source: MessageQueue,
        path: Path,
        *,
        append: bool = False,
        wait_seconds: float = 1.0,
        on_record: Callable[[Message], None] | None = None,
        cleanup: Cleanup | None = None,
    ) -> None:
        self.source = source
        self.path = path
        self.wait_seconds = wait_seconds
        self.on_record = on_record
        self._writer = StreamWriter(path, append=append)
        self._cleanup = cleanup
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def recorded(self) -> int:
        """Messages written so far."""
        return self._writer.written

    @classmethod
    async def on_topic(
        cls,
        location: BusLocation | str,
        topic: str,
        path: Path,
        *,
        queue: str | None = None,
        append: bool = False,
        on_record: Callable[[Message], None] | None = None,
    ) -> Recorder:
        """A recorder of an SNS topic at an endpoint (a URL) or in AWS: makes its queue
        (`queue`, or `<topic>-recorder-<random>`) and subscribes it to the existing topic."""
        where = location if isinstance(location, BusLocation) else BusLocation("endpoint", location)
        sns, sqs = where.sns(), where.sqs()
        name = queue or f"{topic}-recorder-{uuid.uuid4().hex[:8]}"
        subscription = await asyncio.to_thread(_subscribe_queue, sns, sqs, topic, name)

        async def cleanup() -> None:
            await asyncio.to_thread(_unsubscribe_queue, sns, sqs, subscription, name)

        return cls(SqsQueue(sqs, name), path, append=append, on_record=on_record, cleanup=cleanup)

    @classmethod
    def in_memory(
        cls,
        broker: InMemoryBroker,
        topic: str,
        path: Path,
        *,
        append: bool = False,
        on_record: Callable[[Message], None] | None = None,
    ) -> Recorder:
        """A recorder of a topic of an `InMemoryBroker`."""
        name = f"{topic}-recorder-{uuid.uuid4().hex[:8]}"
        broker.create_queue(QueueSpec(name))
        broker.subscribe(SubscriptionSpec(topic, name))
        return cls(
            InMemoryQueue(broker, name), path, append=append, wait_seconds=0.05,
            on_record=on_record,
        )  # fmt: skip

    async def start(self) -> None:
        if self._task is not None:
            return
        self._writer.open()
        self._stopping.clear()
        self._task = asyncio.create_task(self._drain(), name=f"recorder:{self.source.name}")

    async def stop(self) -> None:
        """Record what is still queued, then close the file and remove the queue."""
        self._stopping.set()
        try:
            if self._task is not None:
                await self._task
                self._task = None
            while await self._take(0):
                pass
        finally:
            self._writer.close()
            if self._cleanup is not None:
                cleanup, self._cleanup = self._cleanup, None
                await cleanup()

    async def _drain(self) -> None:
        while not self._stopping.is_set():
            try:
                await self._take(self.wait_seconds)
            except Exception:
                log.exception("recording from %s failed; retrying in 1 s", self.source.name)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), timeout=1.0)

    async def _take(self, wait_seconds: float) -> int:
        batch = await self.source.receive(10, wait_seconds)
        for received in batch:
            self._writer.write(received.message)
            if self.on_record is not None:
                self.on_record(received.message)
        if batch:
            await self.source.delete([received.receipt for received in batch])
        return len(batch)

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()


def _subscribe_queue(sns: SNSClient, sqs: SQSClient, topic: str, queue: str) -> str:
    """Make `queue`, let `topic` send to it and subscribe it (raw delivery, no filter), as
    `accord provision` does; the subscription's ARN, for the cleanup."""
    topic_arn = SnsEventPublisher(sns, topic).topic_arn()  # the topic must exist already
    subscription = SubscriptionSpec(topic, queue, {}, raw_delivery=True)
    Provisioner(sns, sqs).apply(Topology((TopicSpec(topic),), (QueueSpec(queue),), (subscription,)))
    suffix = f":{queue}"  # a queue's ARN ends with its name
    for page in sns.get_paginator("list_subscriptions_by_topic").paginate(TopicArn=topic_arn):
        for existing in page.get("Subscriptions", []):
            if existing.get("Protocol") == "sqs" and existing.get("Endpoint", "").endswith(suffix):
                return existing["SubscriptionArn"]
    raise RuntimeError(f"{queue} was subscribed to {topic}, but the subscription is not listed")


def _unsubscribe_queue(sns: SNSClient, sqs: SQSClient, subscription: str, queue: str) -> None:
    with contextlib.suppress(Exception):  # the topic may be gone with the emulator
        sns.unsubscribe(SubscriptionArn=subscription)
    with contextlib.suppress(Exception):
        sqs.delete_queue(QueueUrl=sqs.get_queue_url(QueueName=queue)["QueueUrl"])


class RecordingPublisher:
    """`EventPublisher` that writes every message it publishes to a stream file, then
    publishes it through `inner` (what one publisher sends, not everything on the topic)."""

    def __init__(self, inner: EventPublisher, writer: StreamWriter) -> None:
        self.inner = inner
        self.writer = writer

    async def publish(self, event: Event) -> None:
        await self.publish_message(encode(event))

    async def publish_message(self, message: Message) -> None:
        await self.inner.publish_message(message)
        self.writer.write(message)

    async def publish_batch(self, messages: Sequence[Message]) -> list[Exception | None]:
        """`BatchPublisher`: through `inner` in one call where it can; the accepted ones are
        written."""
        outcomes = await publish_batch(self.inner, messages)
        for message, outcome in zip(messages, outcomes, strict=True):
            if outcome is None:
                self.writer.write(message)
        return outcomes
