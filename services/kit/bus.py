"""The event bus ports: publishing events and consuming them from a queue.

Adapters: `services.kit.sns.SnsEventPublisher` and `services.kit.sqs.SqsEventConsumer` for
SNS/SQS (AWS, LocalStack, moto server); `services.kit.memory` for the in-memory bus with the
same semantics. Delivery is at least once: handlers must tolerate duplicates and any order.
Publishers that can send several messages in one call (SNS `PublishBatch`) also implement
`BatchPublisher`; `publish_batch` uses it where it is there.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from services.kit.events import Event, Message

PUBLISH_BATCH_MAX = 10
"""The most messages one `PublishBatch` call takes (SNS's limit)."""


@dataclass(frozen=True)
class Delivery:
    """How an event reached a handler: which queue, which message, the how-many-th receive."""

    queue: str
    message_id: str
    receive_count: int


# Answers None, or whether the event had its effect now (false: a duplicate, absorbed).
Handler = Callable[[Event, Delivery], Awaitable[bool | None]]


class EventPublisher(Protocol):
    """Publishes events to the bus (validated against their schema first)."""

    async def publish(self, event: Event) -> None: ...

    async def publish_message(self, message: Message) -> None:
        """Publish an already-encoded event, e.g. one stored in the outbox."""
        ...


@runtime_checkable
class BatchPublisher(Protocol):
    """Publishes several encoded events in one call, each accepted or refused on its own."""

    async def publish_batch(self, messages: Sequence[Message]) -> list[Exception | None]:
        """Publish `messages`: for each, in order, `None` once the bus has accepted it, or the
        error that kept it out. A call that fails as a whole answers its error for every
        message; it never raises for a message the bus refused."""
        ...


async def publish_batch(
    publisher: EventPublisher, messages: Sequence[Message]
) -> list[Exception | None]:
    """`messages` through `publisher`, in one call where it is a `BatchPublisher` and one at a
    time where it is not: for each message, `None` if the bus accepted it, or why not."""
    if isinstance(publisher, BatchPublisher):
        return await publisher.publish_batch(messages)
    outcomes: list[Exception | None] = []
    for message in messages:
        try:
            await publisher.publish_message(message)
        except Exception as error:
            outcomes.append(error)
        else:
            outcomes.append(None)
    return outcomes


class EventConsumer(Protocol):
    """Runs handlers for the events arriving on one queue until stopped."""

    def subscribe(self, event_type: str, handler: Handler) -> None: ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


@dataclass(frozen=True)
class ReceivedMessage:
    """A message taken from a queue; it stays there, invisible, until deleted."""

    message_id: str
    receipt: str
    message: Message
    receive_count: int
    # When the queue received it (seconds since the epoch; SQS `SentTimestamp`), if known.
    sent_at: float | None = None


@dataclass(frozen=True)
class DeadLetter:
    """A message in a dead-letter queue, with why it is there."""

    message_id: str
    message: Message
    receive_count: int
    reason: str | None = field(default=None)


class MessageQueue(Protocol):
    """One queue as its consumer sees it (SQS semantics: receive, delete, hide for a while)."""

    name: str

    async def receive(self, max_messages: int, wait_seconds: float) -> list[ReceivedMessage]:
        """Up to `max_messages`, waiting at most `wait_seconds` for the first to arrive.

        Cancelling a receive loses nothing: what it takes after all is made visible again
        at once (a consumer that stops cancels its long poll rather than wait for it)."""
        ...

    async def delete(self, receipts: Sequence[str]) -> None: ...

    async def retry_later(self, receipt: str, delay_seconds: int) -> None:
        """Make a received message visible again after `delay_seconds`."""
        ...

    async def dead_letter(self, received: ReceivedMessage, reason: str) -> None:
        """Move a message to the queue's dead-letter queue with `reason`, and delete it here."""
        ...

    async def max_receives(self) -> int | None:
        """The receive count after which the queue dead-letters a message, if it does."""
        ...
