"""The notification service, composed: `create_app(settings, *, adapters=None)`.

With `adapters=None` the real adapters are built from the settings when the app starts (its
lifespan): the SQL database, the SMTP sender, the JWKS-backed token verifier, the auth
service's role directory, and the SQS consumer of the queue `NOTIFICATION_QUEUE` when an SNS/SQS
endpoint is configured (`AWS_ENDPOINT_URL`, or real AWS with `ACCORD_ENV=production`). Tests and
the harness pass their own (`Adapters`), in memory or not.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import httpx
from fastapi import FastAPI

from services.kit.aws import BusLocation
from services.kit.bus import EventConsumer
from services.kit.consumer import Backoff, ConsumerOptions
from services.kit.http import (
    BodyLimitMiddleware,
    TraceparentMiddleware,
    database_unavailable_problems,
    install_problem_handlers,
)
from services.kit.retention import RetentionTask
from services.kit.settings import warn_of_local_defaults
from services.kit.tokens import HttpJwksFetcher, JwksKeySource, TokenVerifier
from services.notification import api, consumers, handlers
from services.notification.mail import SmtpConfig, SmtpEmailSender
from services.notification.ports import Database, EmailSender, RoleDirectory
from services.notification.rendering import JinjaEmailComposer
from services.notification.roles import HttpRoleDirectory
from services.notification.settings import Settings
from services.notification.storage import SqlNotificationDatabase

log = logging.getLogger("accord.notification")

# A claim on an email lasts this many times the SMTP timeout: the sender bounds a whole SMTP
# conversation to twice the timeout, so a live worker never loses its claim mid-send.
CLAIM_LEASE_FACTOR = 3


def now_utc() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Adapters:
    """The ports of the service; `create_app` builds the real ones when given none."""

    database: Database
    sender: EmailSender
    tokens: TokenVerifier
    # None: the `roles` claim of a verified token is trusted (local mode without a service
    # credential for the auth service).
    roles: RoleDirectory | None
    consumer: EventConsumer | None
    clock: Callable[[], datetime] = field(default=now_utc)


def consumer_options(settings: Settings) -> ConsumerOptions:
    return ConsumerOptions(
        max_in_flight=settings.consumer_max_in_flight,
        wait_seconds=settings.consumer_wait_seconds,
        backoff=Backoff(settings.retry_backoff_base_seconds, settings.retry_backoff_cap_seconds),
    )


def smtp_config(settings: Settings) -> SmtpConfig:
    password = settings.smtp_password
    return SmtpConfig(
        host=settings.smtp_host,
        port=settings.smtp_port,
        tls=settings.smtp_tls,
        from_address=settings.from_address,
        username=settings.smtp_username,
        password=None if password is None else password.get_secret_value(),
        timeout=settings.smtp_timeout_seconds,
        validate_certs=settings.smtp_validate_certs,
    )


@contextlib.asynccontextmanager
async def open_adapters(settings: Settings, bus: BusLocation) -> AsyncIterator[Adapters]:
    """The real adapters, open for the life of the app."""
    async with contextlib.AsyncExitStack() as stack:
        database = SqlNotificationDatabase(settings.database_url)
        stack.push_async_callback(database.dispose)
        client = await stack.enter_async_context(httpx.AsyncClient())
        keys = JwksKeySource(
            HttpJwksFetcher(client, settings.jwks_url, settings.jwks_timeout_seconds)
        )
        tokens = TokenVerifier(
            keys,
            issuer=settings.issuer,
            audience=settings.audience,
            max_lifetime=timedelta(seconds=settings.access_token_max_lifetime_seconds),
        )
        roles: RoleDirectory | None = None
        if settings.auth_service_api_key is not None:
            roles = HttpRoleDirectory(
                client,
                settings.auth_service_url,
                settings.auth_service_api_key.get_secret_value(),
                timeout=settings.auth_service_timeout_seconds,
                cache_seconds=settings.role_cache_seconds,
            )
        else:
            log.warning(
                "NOTIFICATION_AUTH_SERVICE_API_KEY is not set: the admin role is taken from "
                "the access token without asking the auth service (local mode only)"
            )
        consumer: EventConsumer | None = None
        if not settings.consume:
            log.info("NOTIFICATION_CONSUME is off: this instance serves HTTP only")
        elif bus.mode == "memory":
            log.warning(
                "no SNS/SQS endpoint (AWS_ENDPOINT_URL) is configured: no events are consumed"
            )
        else:
            from services.kit.sqs import SqsEventConsumer

            consumer = SqsEventConsumer(bus.sqs(), settings.queue, consumer_options(settings))
        yield Adapters(
            database=database,
            sender=SmtpEmailSender(smtp_config(settings)),
            tokens=tokens,
            roles=roles,
            consumer=consumer,
        )


def create_app(settings: Settings, *, adapters: Adapters | None = None) -> FastAPI:
    """The notification service as an ASGI app; nothing is opened until it starts."""
    # Detected now, so that a wrong AWS_ENDPOINT_URL fails here, naming the variable.
    bus = BusLocation.detect() if adapters is None else None
    composer = JinjaEmailComposer()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        warn_of_local_defaults(settings, "notification", settings.local_defaults, log)
        async with contextlib.AsyncExitStack() as stack:
            if adapters is not None:
                active = adapters
            else:
                assert bus is not None
                active = await stack.enter_async_context(open_adapters(settings, bus))
            if settings.migrate_on_start:
                await active.database.migrate()
            deps = handlers.Dependencies(
                unit_of_work=active.database.unit_of_work,
                sender=active.sender,
                composer=composer,
                clock=active.clock,
                link_base_url=settings.link_base_url,
                claim_lease=timedelta(seconds=settings.smtp_timeout_seconds * CLAIM_LEASE_FACTOR),
            )
            app.state.services = api.Services(
                deps=deps,
                tokens=active.tokens,
                roles=active.roles,
                database_ping=active.database.ping,
                sender=active.sender,
            )
            if active.consumer is not None:
                consumers.subscribe(active.consumer, deps, active.roles)
                await active.consumer.start()
                stack.push_async_callback(active.consumer.stop)
            database = active.database
            retention = RetentionTask(
                lambda: database.prune(
                    timedelta(days=settings.processed_event_retention_days), active.clock()
                ),
                interval=settings.prune_interval_seconds,
                name="notification-retention",
            )
            await retention.start()
            stack.push_async_callback(retention.stop)
            app.state.retention = retention
            yield

    app = FastAPI(
        title="Accord notification service",
        lifespan=lifespan,
        # The contract is the documentation (`contracts/openapi/notification-service.yaml`).
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
    )
    app.add_middleware(TraceparentMiddleware)
    # Outermost, so that nothing reads a body before its size is checked.
    app.add_middleware(BodyLimitMiddleware, max_body_bytes=settings.max_request_body_bytes)
    install_problem_handlers(app, database_unavailable_problems(api.RETRY_AFTER_SECONDS))
    app.include_router(api.router)
    return app
