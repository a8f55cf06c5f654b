"""The notification service, composed: `create_app(settings, *, adapters=None)` is the one
place where its parts meet.

With `adapters=None` the real adapters are built from the settings (`build_adapters`): the SQL
database, the SMTP sender, the JWKS-backed token verifier, the auth service's role directory,
and the SQS consumer of the queue `NOTIFICATION_QUEUE` when an SNS/SQS endpoint is configured
(`AWS_ENDPOINT_URL`, or real AWS with `ACCORD_ENV=production`); they connect only once the app
starts (its lifespan), and are closed when it stops. Tests and the harness pass their own
(`Adapters`), in memory or not.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta

import httpx
from fastapi import FastAPI

from generated.notification import server
from services.kit import composition
from services.kit.auth_client import AuthClient, ClientPolicy, jwks_base_url
from services.kit.aws import BusLocation
from services.kit.bus import EventConsumer
from services.kit.composition import Close, ServiceAdapters, nothing
from services.kit.consumer import Backoff, ConsumerOptions
from services.kit.http import database_unavailable_problems
from services.kit.retention import RetentionTask
from services.kit.security import ContractAuthenticator
from services.kit.tokens import JwksKeySource, TokenVerifier
from services.kit.tracing import Tracing
from services.notification import api, consumers, handlers
from services.notification.mail import SmtpConfig, SmtpEmailSender
from services.notification.ports import Database, EmailSender, RoleDirectory
from services.notification.rendering import JinjaEmailComposer
from services.notification.roles import AuthServiceRoleDirectory
from services.notification.settings import Settings
from services.notification.storage import SqlNotificationDatabase

log = logging.getLogger("accord.notification")

# A claim on an email lasts this many times the SMTP timeout: the sender bounds a whole SMTP
# conversation to twice the timeout, so a live worker never loses its claim mid-send.
CLAIM_LEASE_FACTOR = 3
# The auth service is asked twice (once more after a failure worth trying again).
ROLE_RETRIES = 1


@dataclass(frozen=True)
class Adapters(ServiceAdapters):
    """The ports of the notification service and what implements them; `close` closes the
    database, the HTTP client and the SQS client."""

    database: Database
    sender: EmailSender
    tokens: TokenVerifier
    # None: the `roles` claim of a verified token is trusted (local mode without a service
    # credential for the auth service).
    roles: RoleDirectory | None
    consumer: EventConsumer | None


def consumer_options(settings: Settings) -> ConsumerOptions:
    return ConsumerOptions(
        max_in_flight=settings.consumer_max_in_flight,
        receives=settings.consumer_receives,
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


def build_adapters(settings: Settings, *, bus: BusLocation | None = None) -> Adapters:
    """The real adapters: the configured database, SMTP, the auth service over HTTP (keys and
    roles), and the service's queue on SQS when the runtime mode has one (`bus`: detected
    from the environment when None)."""
    bus = bus or BusLocation.detect()
    database = SqlNotificationDatabase(settings.database_url)
    keys_base_url = jwks_base_url(settings.jwks_url, "NOTIFICATION_JWKS_URL")
    tracing = Tracing.for_service(settings.service())
    keys_http = httpx.AsyncClient(base_url=keys_base_url, transport=tracing.transport("auth"))
    keys_policy = ClientPolicy(timeout=settings.jwks_timeout_seconds, retries=ROLE_RETRIES)
    keys = JwksKeySource(AuthClient.over(keys_http, keys_policy).jwks)
    tokens = TokenVerifier(
        keys,
        issuer=settings.issuer,
        audience=settings.audience,
        max_lifetime=timedelta(seconds=settings.access_token_max_lifetime_seconds),
    )
    roles: RoleDirectory | None = None
    roles_http = httpx.AsyncClient(
        base_url=settings.auth_service_url, transport=tracing.transport("auth")
    )
    key = settings.auth_service_api_key
    if key is not None:
        policy = ClientPolicy(
            timeout=settings.auth_service_timeout_seconds,
            retries=ROLE_RETRIES,
            cache_seconds=settings.role_cache_seconds,
        )
        client = AuthClient.over(
            roles_http,
            policy,
            service_api_key=key.get_secret_value(),
            credential="NOTIFICATION_AUTH_SERVICE_API_KEY",
        )
        roles = AuthServiceRoleDirectory(client)
    else:
        log.warning(
            "NOTIFICATION_AUTH_SERVICE_API_KEY is not set: the admin role is taken from "
            "the access token without asking the auth service (local mode only)"
        )
    consumer: EventConsumer | None = None
    close_bus: Close = nothing
    if not settings.consume:
        log.info("NOTIFICATION_CONSUME is off: this instance serves HTTP only")
    elif bus.mode == "memory":
        log.warning("no SNS/SQS endpoint (AWS_ENDPOINT_URL) is configured: no events are consumed")
    else:
        consumer, close_bus = composition.sqs_consumer(
            bus, settings.queue, consumer_options(settings), tracing=tracing
        )
    return Adapters(
        database=database,
        sender=SmtpEmailSender(smtp_config(settings)),
        tokens=tokens,
        roles=roles,
        consumer=consumer,
        tracing=tracing,
        close=composition.closing(
            close_bus, keys_http.aclose, roles_http.aclose, database.dispose, tracing.shutdown
        ),
    )


@contextlib.asynccontextmanager
async def open_adapters(settings: Settings, bus: BusLocation) -> AsyncIterator[Adapters]:
    """The real adapters (`build_adapters`) for the length of a block, closed after it: the
    service's parts as it composes them, without its app."""
    adapters = build_adapters(settings, bus=bus)
    try:
        yield adapters
    finally:
        await adapters.close()


def create_app(settings: Settings, *, adapters: Adapters | None = None) -> FastAPI:
    """The notification service as an ASGI application; clients open and close in its
    lifespan."""
    # Built now, so that a wrong AWS_ENDPOINT_URL fails here, naming the variable.
    parts = adapters if adapters is not None else build_adapters(settings)
    database = parts.database
    deps = handlers.Dependencies(
        unit_of_work=database.unit_of_work,
        sender=parts.sender,
        composer=JinjaEmailComposer(),
        clock=parts.clock,
        link_base_url=settings.link_base_url,
        claim_lease=timedelta(seconds=settings.smtp_timeout_seconds * CLAIM_LEASE_FACTOR),
    )
    if parts.consumer is not None:
        consumers.subscribe(parts.consumer, deps, parts.roles)
    retention = RetentionTask(
        lambda: database.prune(
            timedelta(days=settings.processed_event_retention_days), parts.clock()
        ),
        interval=settings.prune_interval_seconds,
        name="notification-retention",
    )

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        settings.warn_of_local_defaults(log)
        async with contextlib.AsyncExitStack() as stack:
            stack.push_async_callback(parts.close)
            await database.prepare(settings, log)
            if parts.consumer is not None:
                await parts.consumer.start()
                stack.push_async_callback(parts.consumer.stop)
            await retention.start()
            stack.push_async_callback(retention.stop)
            yield

    problems = database_unavailable_problems(api.RETRY_AFTER_SECONDS)
    app = composition.service_app(
        settings, lifespan, problems, tracing=parts.tracing, metrics=parts.metrics
    )
    if parts.consumer is not None:
        composition.draining(app).add(parts.consumer.stop)  # first, on SIGTERM
        parts.metrics.observe_consumer(parts.consumer)
    # Each operation's `security`, as the contract states it: a verified access token whose
    # roles the auth service confirms now (`parts.roles`; None trusts the token, local mode).
    authenticator = ContractAuthenticator(
        parts.tokens, api.confirmed_roles(parts.roles), retry_after=api.RETRY_AFTER_SECONDS
    )
    implementation = api.NotificationApi(deps, database.ping, parts.sender, metrics=parts.metrics)
    app.include_router(server.build_router(implementation, authenticator))
    app.state.adapters = parts
    app.state.retention = retention
    return app
