"""The gateway service, composed: `create_app(settings, adapters=None)` is the one place where
its parts meet. The generated router (`generated/gateway/server.py`) binds every operation of
`contracts/openapi/gateway-service.yaml` to `GatewayApi`, and admits each caller as the
operation's `security` says through the kit's `ContractAuthenticator` (tokens verified with the
auth service's keys, an admin's role confirmed with the auth service). Tests pass their own
`Adapters`; `None` builds the real ones."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

import httpx
from fastapi import FastAPI

from generated.auth.client import AuthServiceClient
from generated.gateway import server
from generated.security import Authenticator
from generated.user.client import UserServiceClient
from services.gateway.api import GatewayApi, RequestArrival
from services.gateway.overview import Composer, Deadlines
from services.gateway.settings import Settings
from services.kit import composition
from services.kit.callers import caller_security
from services.kit.calls import ClientPolicy
from services.kit.composition import ServiceAdapters
from services.kit.tracing import Tracing

log = logging.getLogger("accord.gateway")

USER_AGENT = "accord-gateway-service"


@dataclass(frozen=True)
class Adapters(ServiceAdapters):
    """The gateway's ports: who admits callers, the generated clients of the services an
    overview is composed from (base URLs set, no credentials), and whether the auth service
    answers; `close` closes the HTTP clients."""

    authenticator: Authenticator
    auth: AuthServiceClient
    user: UserServiceClient
    auth_reachable: Callable[[], Awaitable[bool]]


def build_adapters(settings: Settings) -> Adapters:
    """The real adapters: the auth and user services over HTTP."""
    tracing = Tracing.for_service(settings.service())
    security = caller_security(settings, user_agent=USER_AGENT, tracing=tracing)
    user_http = httpx.AsyncClient(
        base_url=settings.user_service_url,
        headers={"User-Agent": USER_AGENT},
        transport=tracing.transport("user"),
    )
    return Adapters(
        authenticator=security.authenticator,
        auth=AuthServiceClient(security.http),
        user=UserServiceClient(user_http),
        auth_reachable=security.auth.reachable,
        tracing=tracing,
        close=composition.closing(user_http.aclose, security.close, tracing.shutdown),
    )


def composer(settings: Settings) -> Composer:
    """The policy and the deadlines of the calls an overview is composed from."""
    return Composer(
        ClientPolicy(timeout=settings.call_timeout_seconds, retries=settings.call_retries),
        Deadlines(part=settings.part_timeout_seconds, whole=settings.deadline_seconds),
        retry_after=settings.unavailable_retry_after_seconds,
    )


def create_app(settings: Settings, *, adapters: Adapters | None = None) -> FastAPI:
    """The gateway service as an ASGI application; its clients close with its lifespan."""
    parts = adapters if adapters is not None else build_adapters(settings)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        settings.warn_of_local_defaults(log)
        log.info("gateway service ready")
        try:
            yield
        finally:
            await parts.close()

    app = composition.service_app(
        settings, lifespan, {}, tracing=parts.tracing, metrics=parts.metrics
    )
    app.add_middleware(RequestArrival)
    implementation = GatewayApi(
        parts.auth,
        parts.user,
        composer(settings),
        auth_reachable=parts.auth_reachable,
        metrics=parts.metrics,
    )
    app.include_router(server.build_router(implementation, parts.authenticator))
    app.state.adapters = parts
    return app
