"""Prometheus metrics of a service, answered by its `getMetrics` operation (`GET /metrics`) in the
text exposition format 0.0.4.

Each app keeps its series in a `CollectorRegistry` of its own, never the process's global one:
`accord up` and the tests run several apps in one process. The series (`accord_` prefix):

- `accord_http_request_duration_seconds` (histogram; service, operation, status): each request,
  by the operationId of the route it matched (`unmatched` for none);
- per consumer (`queue`; `event_type`, one of the catalog's or `unknown`):
  `accord_consumer_messages_received_total` (messages taken from the queue),
  `accord_consumer_messages_handled_total` (handler returned, duplicates included),
  `accord_consumer_duplicates_absorbed_total` (already applied: the kit's idempotency),
  `accord_consumer_messages_failed_total` (handler failed; retried, or dead-lettered on the last
  receive), `accord_consumer_messages_dead_lettered_total` (by `reason`: `invalid`, `unrouted`,
  `retries_exhausted`), `accord_consumer_handling_duration_seconds` (histogram, the handler's
  time) and `accord_consumer_message_age_seconds` (histogram, the lag: a message's age when
  received, from SQS `SentTimestamp`, else the event's `timestamp`);
- the outbox (`service`: auth): `accord_outbox_pending_rows` and
  `accord_outbox_oldest_pending_age_seconds` (0 when none is pending), read at scrape time;
- per queue (sampled): `accord_queue_visible_messages` and
  `accord_dead_letter_queue_visible_messages` (`queue` names the service's queue, whose
  dead-letter queue it is).

The queue depths cost a `GetQueueAttributes` call each, so they are sampled at scrape time at
most every `queue_sample_seconds`, not on every scrape; the outbox is one indexed query, made on
every scrape. The alerting rules over these series are `accord deploy render --format
prometheus-rules` (`harness/deploy/alerts.py`).
"""

from __future__ import annotations

import asyncio
import bisect
import logging
import math
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Final, Protocol, runtime_checkable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from sqlalchemy import Table, func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from generated.events.catalog import MESSAGES
from services.kit.bus import ReceivedMessage
from services.kit.consumer import QueueConsumer
from services.kit.events import Event

log = logging.getLogger("accord.metrics")

UNMATCHED: Final = "unmatched"  # the operation of a request no route matched
UNKNOWN_EVENT: Final = "unknown"  # the event type of a message that names none of the catalog's

DURATION_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
AGE_BUCKETS: Final = (0.1, 0.5, 1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 900.0, 3600.0, 14400.0)
SAMPLE_TIMEOUT_SECONDS: Final = 2.0


@runtime_checkable
class QueueDepths(Protocol):
    """A queue that can say how many messages wait in it and in its dead-letter queue."""

    async def depths(self) -> tuple[int, int | None]: ...


Sample = Callable[[], Awaitable[None]]


class _PlainCounter:
    """A labelled counter kept as plain numbers and exposed at scrape time. A consumer counts
    several things a message, and each value of prometheus_client takes a lock; these are
    only touched from the event loop's thread (the consumer, the scrape), so need none."""

    def __init__(self, name: str, documentation: str, labels: tuple[str, ...]) -> None:
        self.name, self.documentation, self.labelnames = name, documentation, labels
        self.values: dict[tuple[str, ...], list[float]] = {}

    def labels(self, *values: str) -> _PlainCounterChild:
        return _PlainCounterChild(self.values.setdefault(values, [0.0]))

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily(self.name, self.documentation, labels=self.labelnames)
        for labels, (value,) in self.values.items():
            family.add_metric(labels, value)
        yield family


class _PlainCounterChild:
    __slots__ = ("_value",)

    def __init__(self, value: list[float]) -> None:
        self._value = value

    def inc(self) -> None:
        self._value[0] += 1


class _PlainHistogram:
    """A labelled histogram kept as plain numbers (see `_PlainCounter`)."""

    def __init__(
        self, name: str, documentation: str, labels: tuple[str, ...], buckets: tuple[float, ...]
    ) -> None:
        self.name, self.documentation, self.labelnames = name, documentation, labels
        self.bounds = buckets
        self.children: dict[tuple[str, ...], _PlainHistogramChild] = {}

    def labels(self, *values: str) -> _PlainHistogramChild:
        child = self.children.get(values)
        if child is None:
            child = self.children[values] = _PlainHistogramChild(self.bounds)
        return child

    def collect(self) -> Iterator[Metric]:
        family = HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)
        edges = [str(float(bound)) for bound in self.bounds] + ["+Inf"]  # as `le` is written
        for labels, child in self.children.items():
            cumulative, buckets = 0.0, []
            for edge, count in zip(edges, child.counts, strict=True):
                cumulative += count
                buckets.append((edge, cumulative))
            family.add_metric(labels, buckets, child.sum)
        yield family


class _PlainHistogramChild:
    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # each bucket's own; the last is +Inf
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.sum += value


class _PlainSeries:
    """The collector of a registry's plain series."""

    def __init__(self, *series: _PlainCounter | _PlainHistogram) -> None:
        self.series = series

    def collect(self) -> Iterator[Metric]:
        for one in self.series:
            yield from one.collect()


@dataclass
class _Sampler:
    """A refresh of some gauges, run at scrape time at most every `every` seconds."""

    sample: Sample
    every: float
    last: float = -math.inf
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def refresh(self, now: float) -> None:
        if now - self.last < self.every or self.lock.locked():
            return
        async with self.lock:
            self.last = now
            try:
                await asyncio.wait_for(self.sample(), SAMPLE_TIMEOUT_SECONDS)
            except Exception as error:  # the gauges keep their last value
                log.warning("sampling metrics failed: %s: %s", type(error).__name__, error)


class Metrics:
    """The metrics of one service app, in a registry of its own. `disabled()` records nothing
    and answers an empty exposition (the benchmarks' "metrics off")."""

    def __init__(
        self,
        *,
        enabled: bool = True,
        queue_sample_seconds: float = 15.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.enabled = enabled
        self.queue_sample_seconds = queue_sample_seconds
        self.clock = clock
        self.registry = CollectorRegistry(auto_describe=False)
        registry = self.registry
        self.http_duration = Histogram(
            "accord_http_request_duration_seconds",
            "HTTP requests by the operationId of the route they matched and the status answered.",
            ("service", "operation", "status"),
            buckets=DURATION_BUCKETS,
            registry=registry,
        )
        # Counted for every message, hence plain (`_PlainCounter`).
        self.received = _PlainCounter(
            "accord_consumer_messages_received",
            "Messages a consumer took from its queue.",
            ("queue",),
        )
        self.handled = _PlainCounter(
            "accord_consumer_messages_handled",
            "Events whose handler returned (duplicates absorbed included).",
            ("queue", "event_type"),
        )
        self.duplicates = _PlainCounter(
            "accord_consumer_duplicates_absorbed",
            "Events acknowledged without effect: already applied (idempotent consumer).",
            ("queue", "event_type"),
        )
        self.failed = _PlainCounter(
            "accord_consumer_messages_failed",
            "Handler failures; the message is retried, or dead-lettered on its last receive.",
            ("queue", "event_type"),
        )
        self.dead_lettered = Counter(
            "accord_consumer_messages_dead_lettered",
            "Messages moved to the dead-letter queue, by reason "
            "(invalid, unrouted, retries_exhausted).",
            ("queue", "event_type", "reason"),
            registry=registry,
        )
        self.handling = _PlainHistogram(
            "accord_consumer_handling_duration_seconds",
            "The time a handler took, successful or not.",
            ("queue", "event_type"),
            DURATION_BUCKETS,
        )
        self.age = _PlainHistogram(
            "accord_consumer_message_age_seconds",
            "A message's age when received: the consumer's lag.",
            ("queue", "event_type"),
            AGE_BUCKETS,
        )
        registry.register(
            _PlainSeries(
                self.received,
                self.handled,
                self.duplicates,
                self.failed,
                self.handling,
                self.age,
            )
        )
        self.outbox_pending = Gauge(
            "accord_outbox_pending_rows",
            "Outbox rows not yet published.",
            ("service",),
            registry=registry,
        )
        self.outbox_oldest_age = Gauge(
            "accord_outbox_oldest_pending_age_seconds",
            "The age of the oldest outbox row not yet published (0 when there is none).",
            ("service",),
            registry=registry,
        )
        self.queue_visible = Gauge(
            "accord_queue_visible_messages",
            "Messages waiting in the service's queue (sampled).",
            ("queue",),
            registry=registry,
        )
        self.dead_letter_visible = Gauge(
            "accord_dead_letter_queue_visible_messages",
            "Messages in the dead-letter queue of the service's queue `queue` (sampled).",
            ("queue",),
            registry=registry,
        )
        self._samplers: list[_Sampler] = []
        self._http: dict[tuple[str, str, int], Callable[[float], None]] = {}

    @classmethod
    def disabled(cls) -> Metrics:
        """Metrics that record nothing and answer no series."""
        return cls(enabled=False)

    # --- exposition ------------------------------------------------------------------------

    async def exposition(self) -> str:
        """The text exposition of every series, the sampled gauges refreshed where due."""
        if not self.enabled:
            return ""
        now = time.monotonic()
        await asyncio.gather(*(sampler.refresh(now) for sampler in self._samplers))
        return generate_latest(self.registry).decode()

    def add_sampler(self, sample: Sample, every: float) -> None:
        """Run `sample` at scrape time, at most every `every` seconds (0: on every scrape)."""
        if self.enabled:
            self._samplers.append(_Sampler(sample, every))

    # --- HTTP --------------------------------------------------------------------------------

    def observe_request(self, service: str, operation: str, status: int, seconds: float) -> None:
        key = (service, operation, status)
        observe = self._http.get(key)
        if observe is None:
            observe = self.http_duration.labels(service, operation, str(status)).observe
            self._http[key] = observe
        observe(seconds)

    # --- consumers ---------------------------------------------------------------------------

    def observe_consumer(self, consumer: object) -> None:
        """Count what `consumer` does (a `QueueConsumer`; another consumer is left alone), and
        sample its queue's depths when its queue can tell them."""
        if not self.enabled or not isinstance(consumer, QueueConsumer):
            return
        consumer.observer = ConsumerMetrics(self)
        queue = consumer.queue
        if isinstance(queue, QueueDepths):
            name = queue.name

            async def sample() -> None:
                visible, dead = await queue.depths()
                self.queue_visible.labels(name).set(visible)
                if dead is not None:
                    self.dead_letter_visible.labels(name).set(dead)

            self.add_sampler(sample, self.queue_sample_seconds)

    # --- outbox ------------------------------------------------------------------------------

    def observe_outbox(
        self,
        service: str,
        sessions: async_sessionmaker[AsyncSession],
        table: Table,
        clock: Callable[[], datetime],
    ) -> None:
        """Read `service`'s outbox backlog at each scrape: rows not yet published, the oldest."""

        async def sample() -> None:
            query = select(func.count(), func.min(table.c.created_at)).where(
                table.c.published_at.is_(None)
            )
            async with sessions() as session:
                pending, oldest = (await session.execute(query)).one()
            self.outbox_pending.labels(service).set(pending)
            age = 0.0 if oldest is None else (clock() - _aware(oldest)).total_seconds()
            self.outbox_oldest_age.labels(service).set(max(0.0, age))

        self.add_sampler(sample, 0.0)


def _aware(instant: datetime) -> datetime:
    return instant if instant.tzinfo is not None else instant.replace(tzinfo=UTC)


def event_label(event_type: str | None) -> str:
    """An event type as a label value: one of the catalog's, or `unknown` (so that a stream of
    invalid messages cannot make a series per value it invents)."""
    return event_type if event_type in MESSAGES else UNKNOWN_EVENT


@dataclass(frozen=True)
class _EventSeries:
    """The children of one (queue, event type), looked up once: `labels()` costs a lock and
    a validation on every call, which a consumer would pay several times a message."""

    age: Callable[[float], None]
    handled: Callable[[], None]
    duplicate: Callable[[], None]
    failed: Callable[[], None]
    handling: Callable[[float], None]


class ConsumerMetrics:
    """`services.kit.consumer.ConsumerObserver` into a `Metrics`."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics
        self._received: dict[str, Callable[[], None]] = {}
        self._series: dict[tuple[str, str], _EventSeries] = {}

    def _of(self, queue: str, event_type: str | None) -> _EventSeries:
        kind = event_label(event_type)
        found = self._series.get((queue, kind))
        if found is None:
            metrics = self.metrics
            duplicates = metrics.duplicates.labels(queue, kind)  # 0 until the first
            found = _EventSeries(
                age=metrics.age.labels(queue, kind).observe,
                handled=metrics.handled.labels(queue, kind).inc,
                duplicate=duplicates.inc,
                failed=metrics.failed.labels(queue, kind).inc,
                handling=metrics.handling.labels(queue, kind).observe,
            )
            self._series[(queue, kind)] = found
        return found

    def received(self, queue: str, received: ReceivedMessage, event: Event | None) -> None:
        count = self._received.get(queue)
        if count is None:
            count = self._received[queue] = self.metrics.received.labels(queue).inc
        count()
        sent = received.sent_at if received.sent_at is not None else _event_time(event)
        if sent is not None:
            named = event.eventType if event is not None else received.message.event_type
            self._of(queue, named).age(max(0.0, self.metrics.clock() - sent))

    def handled(self, queue: str, event_type: str, seconds: float, *, duplicate: bool) -> None:
        series = self._of(queue, event_type)
        series.handled()
        series.handling(seconds)
        if duplicate:
            series.duplicate()

    def failed(self, queue: str, event_type: str, seconds: float) -> None:
        series = self._of(queue, event_type)
        series.failed()
        series.handling(seconds)

    def dead_lettered(self, queue: str, event_type: str | None, reason: str) -> None:
        self.metrics.dead_lettered.labels(queue, event_label(event_type), reason).inc()


def _event_time(event: Event | None) -> float | None:
    instant = getattr(event, "timestamp", None)
    return _aware(instant).timestamp() if isinstance(instant, datetime) else None


class HttpMetrics:
    """ASGI middleware: each request's duration to `service`, by the operationId of the route
    it matched (`scope["route"]`, set by the router) and the status answered (500 for an error
    that escaped)."""

    def __init__(self, app: ASGIApp, metrics: Metrics, service: str) -> None:
        self.app = app
        self.metrics = metrics
        self.service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        started = time.perf_counter()
        try:
            await self.app(scope, receive, sending)
        finally:
            route = scope.get("route")
            operation = getattr(route, "operation_id", None) or UNMATCHED
            elapsed = time.perf_counter() - started
            self.metrics.observe_request(self.service, operation, status, elapsed)
