"""The HTTP API of `contracts/openapi/gateway-service.yaml`: `GatewayApi` implements the
generated `GatewayServiceInterface`. Each overview is three calls through the generated clients
of the auth and user services (`generated/auth/client.py`, `generated/user/client.py`), made
with the caller's own access token and composed by `services.gateway.overview.Composer`."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Final

from starlette.types import ASGIApp, Receive, Scope, Send

from generated.auth.client import AuthServiceClient
from generated.gateway import models as api
from generated.gateway.responses import GetReadinessResponse
from generated.gateway.server import GatewayServiceInterface
from generated.security import Caller, current_request
from generated.user.client import UserServiceClient
from services.gateway.overview import Calls, Composer
from services.kit.http import require_bearer_token
from services.kit.metrics import Metrics
from services.kit.security import subject_of

ARRIVED: Final = "arrived"


class GatewayApi(GatewayServiceInterface):
    """The gateway's operations over the generated clients of the auth and user services
    (their base URLs set, no credentials: each call carries the caller's token)."""

    def __init__(
        self,
        auth: AuthServiceClient,
        user: UserServiceClient,
        composer: Composer,
        *,
        auth_reachable: Callable[[], Awaitable[bool]],
        metrics: Metrics | None = None,
    ) -> None:
        self._auth = auth
        self._user = user
        self._composer = composer
        self._auth_reachable = auth_reachable
        self._metrics = metrics or Metrics.disabled()

    async def get_my_overview(self, *, caller: Caller) -> api.Overview:
        auth, user = self._as_caller()
        user_id = subject_of(caller)
        return await self._composer.overview(
            Calls(
                account=auth.get_current_account,
                profile=partial(user.get_user_profile, user_id=user_id),
                addresses=partial(user.list_addresses, user_id=user_id),
                refusals=frozenset({401}),  # the caller's own account: only its token can fail
            ),
            arrived=_arrival(),
        )

    async def get_user_overview(self, *, caller: Caller, user_id: uuid.UUID) -> api.Overview:
        auth, user = self._as_caller()
        return await self._composer.overview(
            Calls(
                account=partial(auth.get_account, user_id=user_id),
                profile=partial(user.get_user_profile, user_id=user_id),
                addresses=partial(user.list_addresses, user_id=user_id),
            ),
            arrived=_arrival(),
        )

    async def get_liveness(self) -> api.HealthStatus:
        return api.HealthStatus(status="ok")

    async def get_metrics(self) -> str:
        return await self._metrics.exposition()

    async def get_readiness(self) -> GetReadinessResponse:
        # The auth service only: every answer needs it; without the user service the gateway
        # still answers, partially.
        auth = api.ReadinessStatus.ok if await self._auth_reachable() else None
        checks = {"authService": auth or api.ReadinessStatus.unavailable}
        status = api.ReadinessStatus.ok if auth else api.ReadinessStatus.unavailable
        readiness = api.Readiness(status=status, checks=checks)
        return GetReadinessResponse(200 if auth else 503, readiness)

    def _as_caller(self) -> tuple[AuthServiceClient, UserServiceClient]:
        """The clients with the caller's token, which the generated route's authenticator has
        already verified (so it is there, and well-formed)."""
        token = require_bearer_token(current_request().headers.get("authorization"))
        return (
            self._auth.with_credentials(bearer_auth=token),
            self._user.with_credentials(bearer_auth=token),
        )


class RequestArrival:
    """ASGI middleware that notes when each request arrived (the event loop's clock, as
    `request.state.arrived`), so that an overview's whole deadline counts the caller's
    admission too (a key set fetched, an admin's role confirmed)."""

    def __init__(self, app: ASGIApp) -> None:
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            scope.setdefault("state", {})[ARRIVED] = asyncio.get_running_loop().time()
        await self._app(scope, receive, send)


def _arrival() -> float | None:
    """When the request being served arrived, if `RequestArrival` noted it."""
    arrived = getattr(current_request().state, ARRIVED, None)
    return arrived if isinstance(arrived, float) else None
