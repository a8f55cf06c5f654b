"""The user service, composed: `create_app(settings, adapters=None)` is the one place where its
parts meet. Tests and the harness pass their own `Adapters`; `None` builds the real ones."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta

from fastapi import FastAPI

from services.kit import composition
from services.kit.bus import EventConsumer
from services.kit.callers import auth_service
from services.kit.composition import Close, ServiceAdapters
from services.kit.consumer import ConsumerOptions
from services.kit.retention import RetentionTask
from services.kit.sqs import QueueNotFoundError
from services.kit.tokens import now_utc
from services.kit.tracing import Tracing
from services.user import api, consumers, handlers
from services.user.ports import AccessTokenVerifier, RolesClient
from services.user.roles import AuthServiceRoles
from services.user.settings import Settings
from services.user.storage import SqlUserStore
from services.user.verification import CachingTokenVerifier

log = logging.getLogger("accord.user")


@dataclass(frozen=True)
class Adapters(ServiceAdapters):
    """The ports of the user service and what implements them; `close` closes the HTTP client
    and the SQS client."""

    store: SqlUserStore
    verifier: AccessTokenVerifier
    roles: RolesClient
    consumer: EventConsumer


def build_adapters(settings: Settings, *, clock: Callable[[], datetime] = now_utc) -> Adapters:
    """The real adapters: the configured database, the auth service over HTTP (keys and
    roles), and the service's queue on SQS (or an in-memory one)."""
    tracing = Tracing.for_service(settings.service())
    auth = auth_service(settings, user_agent="accord-user-service", clock=clock, tracing=tracing)
    consumer, close_bus = event_consumer(settings, tracing)
    return Adapters(
        store=SqlUserStore(settings.database_url),
        verifier=CachingTokenVerifier(auth.verifier, clock=clock),
        roles=AuthServiceRoles(auth.auth),
        consumer=consumer,
        clock=clock,
        tracing=tracing,
        close=composition.closing(auth.close, close_bus, tracing.shutdown),
    )


def event_consumer(
    settings: Settings, tracing: Tracing | None = None
) -> tuple[EventConsumer, Close]:
    """SQS where the runtime mode has it (an endpoint, or AWS); otherwise a queue of a private
    in-memory broker, which no other process can publish to."""
    options = ConsumerOptions(
        max_in_flight=settings.consumer_max_in_flight,
        receives=settings.consumer_receives,
        wait_seconds=settings.consumer_wait_seconds,
    )
    return composition.event_consumer(settings.queue, options, log=log, tracing=tracing)


def create_app(settings: Settings, *, adapters: Adapters | None = None) -> FastAPI:
    """The user service as an ASGI application; clients open and close in its lifespan."""
    parts = adapters if adapters is not None else build_adapters(settings)
    store = parts.store
    deps = handlers.Dependencies(profiles=store.profiles, roles=parts.roles, clock=parts.clock)
    consumers.subscribe(
        parts.consumer, consumers.event_handlers(store, parts.clock, roles=parts.roles)
    )
    retention = RetentionTask(
        lambda: store.prune(timedelta(days=settings.processed_event_retention_days), parts.clock()),
        interval=settings.prune_interval_seconds,
        name="user-retention",
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        settings.warn_of_local_defaults(log)
        try:
            await store.prepare(settings, log)
            try:
                await parts.consumer.start()
            except QueueNotFoundError as error:
                raise RuntimeError(f"USER_QUEUE: {error}") from None
        except BaseException:
            await store.dispose()
            await parts.close()
            raise
        log.info("user service ready (queue %s)", settings.queue)
        await retention.start()
        try:
            yield
        finally:
            try:
                await retention.stop()
                await parts.consumer.stop()
            finally:
                await store.dispose()
                await parts.close()

    problems = api.domain_problems(
        pending_retry_after=settings.pending_retry_after_seconds,
        unavailable_retry_after=settings.unavailable_retry_after_seconds,
    )
    app = composition.service_app(
        settings, lifespan, problems, tracing=parts.tracing, metrics=parts.metrics
    )
    composition.draining(app).add(parts.consumer.stop)  # first, on SIGTERM
    parts.metrics.observe_consumer(parts.consumer)
    app.include_router(
        api.build_router(
            deps,
            parts.verifier,
            store.ping,
            retry_after=settings.unavailable_retry_after_seconds,
            metrics=parts.metrics,
        )
    )
    app.state.adapters = parts
    app.state.retention = retention
    return app
