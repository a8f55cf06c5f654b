"""The auth service, composed: `create_app(settings, adapters=None)` is the one place where its
parts meet. Tests and the harness pass their own `Adapters`; `None` builds the real ones."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from fastapi import FastAPI

from services.auth import api, handlers
from services.auth.passwords import Argon2PasswordHasher
from services.auth.ports import PasswordHasher, RateLimiter
from services.auth.ratelimit import InMemoryRateLimiter, limits_from_settings
from services.auth.settings import Settings
from services.auth.storage import SqlAuthStore, outbox
from services.kit.aws import BusLocation
from services.kit.bus import EventPublisher
from services.kit.http import (
    TraceparentMiddleware,
    database_unavailable_problems,
    install_problem_handlers,
)
from services.kit.memory import InMemoryBroker, InMemoryEventPublisher
from services.kit.outbox import OutboxRelay, RelayOptions
from services.kit.sns import SnsEventPublisher
from services.kit.tokens import (
    SigningKey,
    StaticKeySource,
    TokenIssuer,
    TokenVerifier,
    jwks,
    load_or_create_signing_key,
)

log = logging.getLogger("accord.auth")


def now_utc() -> datetime:
    return datetime.now(UTC)


async def _nothing() -> None:
    return None


@dataclass(frozen=True)
class Adapters:
    """The ports of the auth service and what implements them."""

    store: SqlAuthStore
    publisher: EventPublisher
    passwords: PasswordHasher
    limiter: RateLimiter
    signing_key: SigningKey
    clock: Callable[[], datetime] = now_utc
    # Closes what the adapters opened (the SNS client, the hashing threads), at shutdown.
    close: Callable[[], Awaitable[None]] = field(default=_nothing)


def build_adapters(settings: Settings, *, clock: Callable[[], datetime] = now_utc) -> Adapters:
    """The real adapters: the configured database, SNS (or the in-memory bus), Argon2id."""
    key = (
        SigningKey.from_pem(settings.signing_key.get_secret_value())
        if settings.signing_key is not None
        else load_or_create_signing_key(settings.signing_key_path)
    )
    publisher, close_publisher = event_publisher(settings)
    passwords = Argon2PasswordHasher.from_settings(settings)

    async def close() -> None:
        passwords.close()
        await close_publisher()

    return Adapters(
        store=SqlAuthStore(settings.database_url, clock=clock),
        publisher=publisher,
        passwords=passwords,
        limiter=InMemoryRateLimiter(limits_from_settings(settings)),
        signing_key=key,
        clock=clock,
        close=close,
    )


def event_publisher(settings: Settings) -> tuple[EventPublisher, Callable[[], Awaitable[None]]]:
    """SNS where the runtime mode has it (an endpoint, or AWS); otherwise an in-memory topic
    (events then reach no other process, exactly as an SNS topic without subscribers)."""
    location = BusLocation.detect()
    if location.mode == "memory":
        broker = InMemoryBroker()
        broker.create_topic(settings.event_topic)
        return InMemoryEventPublisher(broker, settings.event_topic), _nothing
    client = location.sns()

    async def close() -> None:
        client.close()

    return SnsEventPublisher(client, settings.event_topic), close


def create_app(settings: Settings, *, adapters: Adapters | None = None) -> FastAPI:
    """The auth service as an ASGI application; clients open and close in its lifespan."""
    parts = adapters if adapters is not None else build_adapters(settings)
    store = parts.store
    relay = OutboxRelay(
        store.sessions,
        outbox,
        parts.publisher,
        RelayOptions(
            poll_interval=settings.outbox_poll_seconds,
            backoff_base=settings.outbox_backoff_base_seconds,
            backoff_cap=settings.outbox_backoff_cap_seconds,
        ),
        clock=parts.clock,
        name="auth-outbox-relay",
    )
    store.after_commit = relay.notify
    deps = handlers.Dependencies(
        unit_of_work=store.unit_of_work,
        passwords=parts.passwords,
        access_tokens=TokenIssuer(
            parts.signing_key,
            issuer=settings.issuer,
            audience=settings.audience,
            ttl=timedelta(seconds=settings.access_token_ttl_seconds),
            clock=parts.clock,
        ),
        limiter=parts.limiter,
        clock=parts.clock,
        lifetimes=handlers.TokenLifetimes(
            refresh=timedelta(seconds=settings.refresh_token_ttl_seconds),
            verification=timedelta(seconds=settings.verification_token_ttl_seconds),
            reset=timedelta(seconds=settings.reset_token_ttl_seconds),
        ),
    )
    key_set = jwks(parts.signing_key)
    security = api.Security(
        TokenVerifier(
            StaticKeySource(key_set),
            issuer=settings.issuer,
            audience=settings.audience,
            clock=parts.clock,
        ),
        settings.service_api_key.get_secret_value(),
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if settings.migrate_on_start:
            await store.migrate()
        await relay.start()
        log.info("auth service ready (signing key %s)", parts.signing_key.kid)
        try:
            yield
        finally:
            await relay.stop()
            await store.dispose()
            await parts.close()

    # The contract is the API's documentation: FastAPI generates none of its own.
    app = FastAPI(
        title="Accord auth service",
        lifespan=lifespan,
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
    )
    app.add_middleware(TraceparentMiddleware)
    install_problem_handlers(
        app, {**api.DOMAIN_PROBLEMS, **database_unavailable_problems(api.RETRY_AFTER_SECONDS)}
    )
    app.include_router(api.build_router(deps, security, key_set, store.ping))
    app.state.relay = relay
    app.state.adapters = parts
    return app
