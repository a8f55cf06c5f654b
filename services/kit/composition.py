"""What the services' composition roots (`services/<service>/app.py`) share: the bus clients
chosen from the runtime mode (`BusLocation`), the closing of what the adapters opened, and the
FastAPI application every service is served as.

Each service still says in its own `create_app` which adapters it has and what its lifespan
starts; this module only holds the parts that would otherwise be written three times.

Stopping (SIGTERM) happens in two steps. At once, while the server finishes the requests under
way, the app's `Draining` runs: its consumers stop receiving and finish the messages in their
hands (handled, committed, deleted). Once the server has stopped, the lifespan's shutdown stops
the rest (the outbox relay, after the last request's rows have committed) and closes the
clients. `services.kit.startup.serve` runs the two in that order.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from fastapi import FastAPI

from services.kit.aws import BusLocation
from services.kit.bus import EventConsumer, EventPublisher
from services.kit.consumer import ConsumerOptions
from services.kit.http import (
    BodyLimitMiddleware,
    ProblemFor,
    install_problem_handlers,
)
from services.kit.memory import InMemoryBroker, InMemoryEventConsumer, InMemoryEventPublisher
from services.kit.metrics import HttpMetrics, Metrics
from services.kit.sns import SnsEventPublisher
from services.kit.sqs import SqsEventConsumer
from services.kit.tokens import now_utc
from services.kit.topology import QueueSpec
from services.kit.tracing import ServerSpans, Tracing

# Closes what an adapter opened, at shutdown.
Close = Callable[[], Awaitable[None]]
# One step of closing: a plain function (`client.close`) or a coroutine function.
CloseStep = Callable[[], Awaitable[None] | None]


async def nothing() -> None:
    """A `Close` for adapters that opened nothing."""


@dataclass(frozen=True, kw_only=True)
class ServiceAdapters:
    """What every service's `Adapters` holds besides its ports: the clock, and what closes the
    clients the adapters opened, at shutdown (nothing for adapters a caller passes in, which
    are the caller's to close). Keyword-only, so that each service's ports come first."""

    clock: Callable[[], datetime] = now_utc
    close: Close = nothing
    # The app's `/metrics`, in a registry of its own (`Metrics.disabled()` for none).
    metrics: Metrics = field(default_factory=Metrics)
    # The service's spans (`services.kit.tracing`): off unless OTLP is configured or a span
    # store is added (`accord up`).
    tracing: Tracing = field(default_factory=Tracing.off)


def closing(*steps: CloseStep) -> Close:
    """One `Close` that runs `steps` in order, each even when one before it failed (as nested
    `try`/`finally` would: the failure propagates once the later steps have run)."""

    async def close() -> None:
        await _close(steps)

    return close


async def _close(steps: tuple[CloseStep, ...]) -> None:
    if not steps:
        return
    try:
        result = steps[0]()
        if inspect.isawaitable(result):
            await result
    finally:
        await _close(steps[1:])


def event_publisher(
    topic: str, location: BusLocation | None = None
) -> tuple[EventPublisher, Close]:
    """SNS where the runtime mode has it (an endpoint, or AWS); otherwise an in-memory topic
    (events then reach no other process, exactly as an SNS topic without subscribers)."""
    location = location or BusLocation.detect()
    if location.mode == "memory":
        broker = InMemoryBroker()
        broker.create_topic(topic)
        return InMemoryEventPublisher(broker, topic), nothing
    client = location.sns()
    return SnsEventPublisher(client, topic), closing(client.close)


def sqs_consumer(
    location: BusLocation, queue: str, options: ConsumerOptions, *, tracing: Tracing | None = None
) -> tuple[EventConsumer, Close]:
    """The consumer of `queue` on SQS (at the endpoint, or AWS), and what closes its client."""
    client = location.sqs()
    return SqsEventConsumer(client, queue, options, tracing=tracing), closing(client.close)


def event_consumer(
    queue: str,
    options: ConsumerOptions,
    *,
    log: logging.Logger,
    location: BusLocation | None = None,
    tracing: Tracing | None = None,
) -> tuple[EventConsumer, Close]:
    """SQS where the runtime mode has it (an endpoint, or AWS); otherwise a queue of a private
    in-memory broker, which no other process can publish to (and a warning that says so)."""
    location = location or BusLocation.detect()
    if location.mode != "memory":
        return sqs_consumer(location, queue, options, tracing=tracing)
    log.warning(
        "no AWS_ENDPOINT_URL and not in production: consuming from a private in-memory "
        "queue, so no events from the auth service will arrive"
    )
    broker = InMemoryBroker()
    broker.create_queue(QueueSpec(queue))
    return InMemoryEventConsumer(broker, queue, options, tracing=tracing), nothing


class Draining:
    """What a service stops as soon as it is told to stop, while its server still finishes the
    requests under way: the work it takes from queues (each consumer's `stop`: no more
    receives, the messages in hand finished). The lifespan stops them again at shutdown, which
    then does nothing, so an app run without `serve` (tests, `accord up`) loses nothing."""

    def __init__(self) -> None:
        self._steps: list[Close] = []

    def add(self, step: Close) -> None:
        """Run `step` when the service is told to stop."""
        self._steps.append(step)

    async def __call__(self) -> None:
        """Run every step at once; a failing one is logged, not raised (shutdown goes on)."""
        results = await asyncio.gather(*(step() for step in self._steps), return_exceptions=True)
        for result in results:
            if isinstance(result, Exception):
                logging.getLogger("accord.startup").error(
                    "stopping failed: %s: %s", type(result).__name__, result
                )


def draining(app: FastAPI) -> Draining:
    """The app's `Draining` (every app made by `service_app` has one)."""
    found = getattr(app.state, "draining", None)
    if not isinstance(found, Draining):
        found = Draining()
        app.state.draining = found
    return found


class AppSettings(Protocol):
    """What `service_app` reads from a service's settings."""

    @property
    def max_request_body_bytes(self) -> int: ...

    @classmethod
    def service(cls) -> str: ...


def service_app(
    settings: AppSettings,
    lifespan: Callable[[FastAPI], AbstractAsyncContextManager[None]],
    problems: Mapping[type[Exception], ProblemFor],
    *,
    tracing: Tracing | None = None,
    metrics: Metrics | None = None,
) -> FastAPI:
    """A service as FastAPI serves it ("Accord auth service"): no documentation of its own
    (the contract is the API's documentation), a server span for every request (`tracing`,
    kept as `app.state.tracing`; off: the request's trace context only passed on), request bodies
    over `max_request_body_bytes` refused before they are read, and each of `problems` (a
    domain error → its problem) answered as the contract describes; with `metrics`, each
    request's duration by operationId and status (`app.state.metrics`)."""
    app = FastAPI(
        title=f"Accord {settings.service()} service",
        lifespan=lifespan,
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
    )
    if metrics is not None and metrics.enabled:
        # Innermost, so that it sees the route the router matched (`scope["route"]`).
        app.add_middleware(HttpMetrics, metrics=metrics, service=settings.service())
    tracing = tracing or Tracing(settings.service(), environ={})  # off until a store is added
    app.add_middleware(ServerSpans, tracing=tracing)
    app.state.tracing = tracing
    # Outermost, so that nothing reads a body before its size is checked.
    app.add_middleware(BodyLimitMiddleware, max_body_bytes=settings.max_request_body_bytes)
    install_problem_handlers(app, problems)
    app.state.draining = Draining()
    app.state.metrics = metrics if metrics is not None else Metrics.disabled()
    return app
