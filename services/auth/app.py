"""The auth service, composed: `create_app(settings, adapters=None)` is the one place where its
parts meet. Tests and the harness pass their own `Adapters`; `None` builds the real ones."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

from fastapi import FastAPI

from generated.auth import server
from services.auth import api, handlers
from services.auth.keyring import PublishedKeySource, SigningKeys, signing_keys
from services.auth.passwords import Argon2PasswordHasher
from services.auth.ports import PasswordHasher, RateLimiter
from services.auth.ratelimit import (
    InFlightLimiter,
    SqlRateLimiter,
    in_flight_caps_from_settings,
    limits_from_settings,
)
from services.auth.retention import retention_rules
from services.auth.settings import Settings
from services.auth.storage import SqlAuthStore, outbox, rate_limit_events
from services.kit import composition
from services.kit.bus import EventPublisher
from services.kit.composition import ServiceAdapters
from services.kit.http import database_unavailable_problems
from services.kit.outbox import OutboxRelay, RelayOptions
from services.kit.retention import RetentionTask, prune
from services.kit.security import ContractAuthenticator
from services.kit.tokens import (
    SigningKey,
    TokenIssuer,
    TokenVerifier,
    jwks,
    now_utc,
)
from services.kit.tracing import Tracing

log = logging.getLogger("accord.auth")

# The contract's security scheme of the other services (`getUserRoles`).
SERVICE_API_KEY: Final = "serviceApiKey"


@dataclass(frozen=True)
class Adapters(ServiceAdapters):
    """The auth service's ports and what implements them (`close`: SNS, the hashing threads)."""

    store: SqlAuthStore
    publisher: EventPublisher
    passwords: PasswordHasher
    limiter: RateLimiter
    # `AUTH_SIGNING_KEY`, or the key ring (`services/auth/keyring.py`).
    signing_keys: SigningKeys

    @property
    def signing_key(self) -> SigningKey:
        """The key that signs access tokens now."""
        return self.signing_keys.current()


def build_adapters(settings: Settings, *, clock: Callable[[], datetime] = now_utc) -> Adapters:
    """The real adapters: the configured database, SNS (or the in-memory bus), Argon2id."""
    keys = signing_keys(settings, clock=clock)
    tracing = Tracing.for_service(settings.service())
    publisher, close_publisher = composition.event_publisher(settings.event_topic)
    passwords = Argon2PasswordHasher.from_settings(settings)
    store = SqlAuthStore(settings.database_url, clock=clock)
    return Adapters(
        store=store,
        publisher=publisher,
        passwords=passwords,
        limiter=SqlRateLimiter(
            store.sessions,
            rate_limit_events,
            limits_from_settings(settings),
            dialect=store.engine.dialect.name,
            clock=clock,
        ),
        signing_keys=keys,
        clock=clock,
        tracing=tracing,
        close=composition.closing(passwords.close, close_publisher, tracing.shutdown),
    )


class BackgroundTasks:
    """`BackgroundWork` on the event loop: each piece of work runs after the answer has gone;
    a failure is logged, and shutdown waits for what is still running."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[None]] = set()

    def __call__(self, work: Coroutine[Any, Any, None], *, name: str) -> None:
        task = asyncio.create_task(work, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("background work %s failed", task.get_name(), exc_info=task.exception())

    async def drain(self, timeout: float = 10.0) -> None:
        """Wait for the work in progress (at most `timeout` seconds, then cancel it)."""
        if not self._tasks:
            return
        _, pending = await asyncio.wait(set(self._tasks), timeout=timeout)
        for task in pending:
            task.cancel()


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
            lease=timedelta(seconds=settings.outbox_lease_seconds),
            batch_size=settings.outbox_publish_batch_size,
            publish_concurrency=settings.outbox_publish_concurrency,
        ),
        clock=parts.clock,
        name="auth-outbox-relay",
        tracing=parts.tracing,
    )
    store.relay_signal.connect(relay.notify)
    rules = retention_rules(settings)
    retention = RetentionTask(
        lambda: prune(store.sessions, rules, now=parts.clock()),
        interval=settings.prune_interval_seconds,
        name="auth-retention",
    )
    background = BackgroundTasks()
    deps = handlers.Dependencies(
        unit_of_work=store.unit_of_work,
        passwords=parts.passwords,
        access_tokens=TokenIssuer(
            parts.signing_keys.current,
            issuer=settings.issuer,
            audience=settings.audience,
            ttl=timedelta(seconds=settings.access_token_ttl_seconds),
            clock=parts.clock,
        ),
        limiter=parts.limiter,
        in_flight=InFlightLimiter(in_flight_caps_from_settings(settings)),
        background=background,
        clock=parts.clock,
        lifetimes=handlers.TokenLifetimes(
            refresh=timedelta(seconds=settings.refresh_token_ttl_seconds),
            verification=timedelta(seconds=settings.verification_token_ttl_seconds),
            reset=timedelta(seconds=settings.reset_token_ttl_seconds),
        ),
    )

    def key_set() -> dict[str, list[dict[str, str]]]:
        return jwks(*parts.signing_keys.published())

    # The contract's security schemes: `bearerAuth` (our access tokens, with roles confirmed
    # from the database at request time) and `serviceApiKey`.
    authenticator = ContractAuthenticator(
        TokenVerifier(
            PublishedKeySource(parts.signing_keys),
            issuer=settings.issuer,
            audience=settings.audience,
            max_lifetime=timedelta(seconds=settings.access_token_ttl_seconds),
            clock=parts.clock,
        ),
        api.DatabaseRoles(deps),
        api_keys={SERVICE_API_KEY: ("X-API-Key", settings.service_api_key.get_secret_value())},
        retry_after=api.RETRY_AFTER_SECONDS,
    )
    implementation = api.AuthApi(
        deps,
        jwks=key_set,
        ready=store.ping,
        client_address=api.ClientAddresses(settings.trusted_proxy_networks),
        metrics=parts.metrics,
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        settings.warn_of_local_defaults(log)
        await store.prepare(settings, log)
        await relay.start()
        await retention.start()
        log.info("auth service ready (signing key %s)", parts.signing_key.kid)
        try:
            yield
        finally:
            await retention.stop()
            await background.drain()
            await relay.stop()
            await store.dispose()
            await parts.close()

    problems = {**api.DOMAIN_PROBLEMS, **database_unavailable_problems(api.RETRY_AFTER_SECONDS)}
    app = composition.service_app(
        settings, lifespan, problems, tracing=parts.tracing, metrics=parts.metrics
    )
    parts.metrics.observe_outbox(settings.service(), store.sessions, outbox, parts.clock)
    app.include_router(server.build_router(implementation, authenticator))
    app.state.relay = relay
    app.state.retention = retention
    app.state.adapters = parts
    app.state.background = background
    return app
