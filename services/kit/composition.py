"""What the services' composition roots (`services/<service>/app.py`) share: the bus clients
chosen from the runtime mode (`BusLocation`), the closing of what the adapters opened, and the
FastAPI application every service is served as.

Each service still says in its own `create_app` which adapters it has and what its lifespan
starts; this module only holds the parts that would otherwise be written three times.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from fastapi import FastAPI

from services.kit.aws import BusLocation
from services.kit.bus import EventConsumer, EventPublisher
from services.kit.consumer import ConsumerOptions
from services.kit.http import (
    BodyLimitMiddleware,
    ProblemFor,
    TraceparentMiddleware,
    install_problem_handlers,
)
from services.kit.memory import InMemoryBroker, InMemoryEventConsumer, InMemoryEventPublisher
from services.kit.sns import SnsEventPublisher
from services.kit.sqs import SqsEventConsumer
from services.kit.tokens import now_utc
from services.kit.topology import QueueSpec

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
    location: BusLocation, queue: str, options: ConsumerOptions
) -> tuple[EventConsumer, Close]:
    """The consumer of `queue` on SQS (at the endpoint, or AWS), and what closes its client."""
    client = location.sqs()
    return SqsEventConsumer(client, queue, options), closing(client.close)


def event_consumer(
    queue: str,
    options: ConsumerOptions,
    *,
    log: logging.Logger,
    location: BusLocation | None = None,
) -> tuple[EventConsumer, Close]:
    """SQS where the runtime mode has it (an endpoint, or AWS); otherwise a queue of a private
    in-memory broker, which no other process can publish to (and a warning that says so)."""
    location = location or BusLocation.detect()
    if location.mode != "memory":
        return sqs_consumer(location, queue, options)
    log.warning(
        "no AWS_ENDPOINT_URL and not in production: consuming from a private in-memory "
        "queue, so no events from the auth service will arrive"
    )
    broker = InMemoryBroker()
    broker.create_queue(QueueSpec(queue))
    return InMemoryEventConsumer(broker, queue, options), nothing


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
) -> FastAPI:
    """A service as FastAPI serves it ("Accord auth service"): no documentation of its own
    (the contract is the API's documentation), trace context on every answer, request bodies
    over `max_request_body_bytes` refused before they are read, and each of `problems` (a
    domain error → its problem) answered as the contract describes."""
    app = FastAPI(
        title=f"Accord {settings.service()} service",
        lifespan=lifespan,
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
    )
    app.add_middleware(TraceparentMiddleware)
    # Outermost, so that nothing reads a body before its size is checked.
    app.add_middleware(BodyLimitMiddleware, max_body_bytes=settings.max_request_body_bytes)
    install_problem_handlers(app, problems)
    return app
