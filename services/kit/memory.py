"""The in-memory bus: SNS/SQS semantics in one process, for tests and single-process runs.

Topics fan out to subscribed queues through filter policies on message attributes; queues
hide received messages for their visibility timeout, count receives, and move a message to
their dead-letter queue once it has been received more than `max_receives` times. Delivery is
at least once, exactly as on SQS, so code tested here behaves the same on AWS.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from services.kit.bus import DeadLetter, ReceivedMessage
from services.kit.consumer import ConsumerOptions, QueueConsumer
from services.kit.events import DEAD_LETTER_REASON, DEAD_LETTER_SOURCE, Event, Message, encode
from services.kit.topology import QueueSpec, SubscriptionSpec, Topology
from services.kit.tracing import Tracing

POLL_INTERVAL = 0.005


class UnknownResourceError(LookupError):
    """A topic or queue that was never created."""


def matches(policy: Mapping[str, Any], attributes: Mapping[str, str]) -> bool:
    """SNS filter-policy matching on message attributes (exact values and `prefix`)."""
    for key, allowed in policy.items():
        value = attributes.get(key)
        if value is None:
            return False
        options = allowed if isinstance(allowed, list) else [allowed]
        if not any(_match_one(option, value) for option in options):
            return False
    return True


def _match_one(option: Any, value: str) -> bool:
    if isinstance(option, str):
        return option == value
    if isinstance(option, dict) and set(option) == {"prefix"}:
        return value.startswith(option["prefix"])
    raise ValueError(f"unsupported filter policy condition {option!r}")


@dataclass
class _Entry:
    message_id: str
    message: Message
    receive_count: int = 0
    visible_at: float = 0.0
    receipt: str | None = None


@dataclass
class _Queue:
    spec: QueueSpec
    entries: list[_Entry] = field(default_factory=list)


class InMemoryBroker:
    """Topics and queues in memory, safe to use from several threads and event loops."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._topics: dict[str, list[SubscriptionSpec]] = {}
        self._queues: dict[str, _Queue] = {}
        self._ids = itertools.count(1)

    # --- provisioning --------------------------------------------------------------------

    def apply(self, topology: Topology) -> None:
        for topic in topology.topics:
            self.create_topic(topic.name)
        for queue in topology.queues:
            self.create_queue(queue)
        for subscription in topology.subscriptions:
            self.subscribe(subscription)

    def create_topic(self, name: str) -> None:
        with self._lock:
            self._topics.setdefault(name, [])

    def create_queue(self, spec: QueueSpec) -> None:
        with self._lock:
            if spec.name not in self._queues:
                self._queues[spec.name] = _Queue(spec)

    def subscribe(self, subscription: SubscriptionSpec) -> None:
        for condition in subscription.filter_policy.values():
            for option in condition if isinstance(condition, list) else [condition]:
                _match_one(option, "")  # refuse unsupported conditions now, not on publish
        with self._lock:
            self._topic(subscription.topic)
            self._queue(subscription.queue)
            subscriptions = self._topics[subscription.topic]
            if subscription not in subscriptions:
                subscriptions.append(subscription)

    def _topic(self, name: str) -> list[SubscriptionSpec]:
        try:
            return self._topics[name]
        except KeyError:
            raise UnknownResourceError(f"no topic named {name!r}") from None

    def _queue(self, name: str) -> _Queue:
        try:
            return self._queues[name]
        except KeyError:
            raise UnknownResourceError(f"no queue named {name!r}") from None

    # --- SNS ------------------------------------------------------------------------------

    def publish(self, topic: str, message: Message) -> str:
        """Deliver a copy to every subscribed queue whose filter policy matches."""
        message_id = str(uuid.uuid4())
        with self._lock:
            for subscription in self._topic(topic):
                if matches(subscription.filter_policy, message.attributes):
                    self._queues[subscription.queue].entries.append(
                        _Entry(str(uuid.uuid4()), message)
                    )
        return message_id

    # --- SQS ------------------------------------------------------------------------------

    def send(self, queue: str, message: Message) -> str:
        with self._lock:
            entry = _Entry(str(uuid.uuid4()), message)
            self._queue(queue).entries.append(entry)
        return entry.message_id

    def receive_now(self, queue: str, max_messages: int) -> list[ReceivedMessage]:
        """What a receive returns at this instant (no waiting)."""
        now = self._clock()
        taken: list[ReceivedMessage] = []
        with self._lock:
            state = self._queue(queue)
            for entry in list(state.entries):
                if len(taken) >= max_messages:
                    break
                if entry.visible_at > now:
                    continue
                spec = state.spec
                if (
                    spec.max_receives is not None
                    and spec.dead_letter_queue is not None
                    and entry.receive_count >= spec.max_receives
                ):
                    state.entries.remove(entry)
                    self._queue(spec.dead_letter_queue).entries.append(
                        _Entry(entry.message_id, entry.message, entry.receive_count)
                    )
                    continue
                entry.receive_count += 1
                entry.visible_at = now + spec.visibility_timeout
                entry.receipt = f"{entry.message_id}#{next(self._ids)}"
                taken.append(
                    ReceivedMessage(
                        entry.message_id, entry.receipt, entry.message, entry.receive_count
                    )
                )
        return taken

    def delete(self, queue: str, receipts: Sequence[str]) -> None:
        wanted = set(receipts)
        with self._lock:
            state = self._queue(queue)
            state.entries = [e for e in state.entries if e.receipt not in wanted]

    def change_visibility(self, queue: str, receipt: str, seconds: int) -> None:
        with self._lock:
            for entry in self._queue(queue).entries:
                if entry.receipt == receipt:
                    entry.visible_at = self._clock() + seconds

    def depth(self, queue: str) -> int:
        """Messages in the queue, visible or not."""
        with self._lock:
            return len(self._queue(queue).entries)

    def queue_spec(self, queue: str) -> QueueSpec:
        with self._lock:
            return self._queue(queue).spec

    def dead_letter_queue_of(self, queue: str) -> str:
        with self._lock:
            target = self._queue(queue).spec.dead_letter_queue
        if target is None:
            raise UnknownResourceError(f"queue {queue!r} has no dead-letter queue")
        return target

    # --- DLQ inspection -------------------------------------------------------------------

    def dead_letters(self, queue: str) -> list[DeadLetter]:
        """The messages in `queue`'s dead-letter queue, oldest first, left where they are."""
        target = self.dead_letter_queue_of(queue)
        with self._lock:
            return [
                DeadLetter(
                    e.message_id,
                    e.message,
                    e.receive_count,
                    e.message.attributes.get(DEAD_LETTER_REASON),
                )
                for e in self._queue(target).entries
            ]

    def redrive(self, queue: str) -> int:
        """Move every dead letter back to `queue`, without the dead-letter attributes."""
        target = self.dead_letter_queue_of(queue)
        with self._lock:
            moved = self._queue(target).entries
            self._queue(target).entries = []
            for entry in moved:
                attributes = {
                    k: v
                    for k, v in entry.message.attributes.items()
                    if k not in (DEAD_LETTER_REASON, DEAD_LETTER_SOURCE)
                }
                self._queue(queue).entries.append(
                    _Entry(entry.message_id, Message(entry.message.body, attributes))
                )
        return len(moved)


class InMemoryQueue:
    """`MessageQueue` over a queue of an `InMemoryBroker`."""

    def __init__(self, broker: InMemoryBroker, name: str) -> None:
        self.broker = broker
        self.name = name

    async def receive(self, max_messages: int, wait_seconds: float) -> list[ReceivedMessage]:
        deadline = time.monotonic() + wait_seconds
        while True:
            taken = self.broker.receive_now(self.name, max_messages)
            if taken or time.monotonic() >= deadline:
                return taken
            await asyncio.sleep(POLL_INTERVAL)

    async def delete(self, receipts: Sequence[str]) -> None:
        self.broker.delete(self.name, receipts)

    async def retry_later(self, receipt: str, delay_seconds: int) -> None:
        self.broker.change_visibility(self.name, receipt, delay_seconds)

    async def dead_letter(self, received: ReceivedMessage, reason: str) -> None:
        target = self.broker.dead_letter_queue_of(self.name)
        attributes = {
            **received.message.attributes,
            DEAD_LETTER_REASON: reason[:1000],
            DEAD_LETTER_SOURCE: self.name,
        }
        self.broker.send(target, Message(received.message.body, attributes))
        self.broker.delete(self.name, [received.receipt])

    async def max_receives(self) -> int | None:
        return self.broker.queue_spec(self.name).max_receives

    async def depths(self) -> tuple[int, int | None]:
        """Messages in the queue (visible or not) and in its dead-letter queue."""
        target = self.broker.queue_spec(self.name).dead_letter_queue
        dead = None if target is None else self.broker.depth(target)
        return self.broker.depth(self.name), dead


class InMemoryEventConsumer(QueueConsumer):
    """`EventConsumer` on a queue of an `InMemoryBroker`."""

    def __init__(
        self,
        broker: InMemoryBroker,
        queue: str,
        options: ConsumerOptions | None = None,
        *,
        tracing: Tracing | None = None,
    ) -> None:
        super().__init__(InMemoryQueue(broker, queue), options, tracing=tracing)


class InMemoryEventPublisher:
    """`EventPublisher` (and `BatchPublisher`) onto a topic of an `InMemoryBroker`."""

    def __init__(self, broker: InMemoryBroker, topic: str) -> None:
        self.broker = broker
        self.topic = topic

    async def publish(self, event: Event) -> None:
        await self.publish_message(encode(event))

    async def publish_message(self, message: Message) -> None:
        self.broker.publish(self.topic, message)

    async def publish_batch(self, messages: Sequence[Message]) -> list[Exception | None]:
        outcomes: list[Exception | None] = []
        for message in messages:
            try:
                self.broker.publish(self.topic, message)
            except UnknownResourceError as error:
                outcomes.append(error)
            else:
                outcomes.append(None)
        return outcomes
