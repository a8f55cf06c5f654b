"""The messaging topology: topics, queues with their dead-letter queues, subscriptions.

`harness.bus.provision` derives it from the AsyncAPI bindings and creates it on SNS/SQS;
`services.kit.memory.InMemoryBroker.apply` creates the same thing in memory.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any


@dataclass(frozen=True)
class TopicSpec:
    """An SNS topic."""

    name: str


@dataclass(frozen=True)
class QueueSpec:
    """An SQS queue; `dead_letter_queue` and `max_receives` together are its redrive policy."""

    name: str
    visibility_timeout: int = 30
    receive_wait_seconds: int = 0
    retention_seconds: int = 345_600
    dead_letter_queue: str | None = None
    max_receives: int | None = None


@dataclass(frozen=True)
class SubscriptionSpec:
    """A queue subscribed to a topic, with raw delivery and a filter on message attributes."""

    topic: str
    queue: str
    filter_policy: dict[str, Any] = field(default_factory=dict)
    raw_delivery: bool = True


@dataclass(frozen=True)
class Topology:
    """Everything to create, in dependency order: topics, queues (dead-letter ones first)."""

    topics: tuple[TopicSpec, ...] = ()
    queues: tuple[QueueSpec, ...] = ()
    subscriptions: tuple[SubscriptionSpec, ...] = ()

    def with_prefix(self, prefix: str) -> Topology:
        """The same topology with every name prefixed (isolated environments, parallel tests)."""
        if not prefix:
            return self

        def name(value: str | None) -> str | None:
            return None if value is None else prefix + value

        return Topology(
            topics=tuple(TopicSpec(prefix + t.name) for t in self.topics),
            queues=tuple(
                replace(q, name=prefix + q.name, dead_letter_queue=name(q.dead_letter_queue))
                for q in self.queues
            ),
            subscriptions=tuple(
                replace(s, topic=prefix + s.topic, queue=prefix + s.queue)
                for s in self.subscriptions
            ),
        )

    def queue(self, name: str) -> QueueSpec:
        for queue in self.queues:
            if queue.name == name:
                return queue
        raise KeyError(name)
