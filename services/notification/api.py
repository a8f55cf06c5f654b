"""The HTTP face of `contracts/openapi/notification-service.yaml`: `listNotifications` (admin)
and the health probes. Routes are thin: query parameters → command → handler → the generated
response model. `build_router` binds them to the handlers' dependencies and the adapters.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse

from generated.notification import models as api
from services.kit import cursors
from services.kit.http import (
    Problem,
    ProblemError,
    dependency_unavailable,
    require_bearer_token,
    unauthenticated,
)
from services.kit.tokens import (
    AccessTokenClaims,
    InvalidTokenError,
    KeySourceUnavailableError,
    TokenVerifier,
)
from services.notification import handlers
from services.notification.domain import (
    ADMIN,
    ListNotifications,
    Notification,
    NotificationType,
    Position,
    RolesUnavailableError,
)
from services.notification.ports import EmailSender, RoleDirectory

RETRY_AFTER_SECONDS = 5
READY_CHECK_SECONDS = 3.0


# --- authentication and authorization --------------------------------------------------


def _unavailable(detail: str) -> ProblemError:
    return ProblemError(dependency_unavailable(detail, RETRY_AFTER_SECONDS))


class Security:
    """The contract's `bearerAuth: [admin]`: a verified access token whose `roles` claim holds
    `admin` and, when `roles` is given, whose subject the auth service confirms holds it now
    (None: the claim is trusted, in local mode without a service credential)."""

    def __init__(self, tokens: TokenVerifier, roles: RoleDirectory | None) -> None:
        self._tokens = tokens
        self._roles = roles

    async def admin(self, request: Request) -> AccessTokenClaims:
        """The verified claims of an admin's access token; 401, 403 or 503 otherwise."""
        header = request.headers.get("authorization")
        required = "A bearer access token is required."
        token = require_bearer_token(
            header and header.strip(), missing=required, malformed=required
        )
        try:
            claims = await self._tokens.verify(token)
        except InvalidTokenError as error:
            raise unauthenticated(
                f"The access token is refused: {error.reason}.", invalid_token=True
            ) from None
        except KeySourceUnavailableError:
            raise _unavailable(
                "The auth service's keys cannot be fetched to verify the access token."
            ) from None
        forbidden = ProblemError(
            Problem.of(403, "forbidden", "Forbidden", "This operation requires the admin role.")
        )
        if ADMIN not in claims.roles:
            raise forbidden
        if self._roles is not None:
            try:
                roles = await self._roles.roles(claims.subject)
            except RolesUnavailableError:
                raise _unavailable(
                    "The auth service cannot be reached to confirm the admin role."
                ) from None
            if ADMIN not in roles:
                raise forbidden
        return claims


# --- cursors ------------------------------------------------------------------------------


def encode_cursor(position: Position) -> str:
    """The `nextCursor` of a page that ends at this entry. It names the position only, so it
    continues the list with the filters of the request it is sent with."""
    return cursors.encode_cursor(position.created_at, position.id)


def decode_cursor(cursor: str) -> Position:
    """Where a `cursor` (already matched against the contract's pattern) continues."""
    return Position(*cursors.decode_cursor(cursor))


# --- routes -------------------------------------------------------------------------------


def _item(entry: Notification) -> api.Notification:
    return api.Notification.model_validate(
        {
            "id": entry.id,
            "eventId": entry.event_id,
            "userId": entry.user_id,
            "type": entry.kind.value,
            "channel": entry.channel,
            "status": entry.status.value,
            "recipient": entry.recipient,
            "subject": entry.subject,
            "reason": entry.reason,
            "createdAt": entry.created_at,
            "sentAt": entry.sent_at,
        }
    )


def build_router(
    deps: handlers.Dependencies,
    security: Security,
    database_ping: Callable[[], Awaitable[bool]],
    sender: EmailSender,
) -> APIRouter:
    """The routes of the contract, bound to the handlers' dependencies and the adapters."""
    router = APIRouter()
    admin = Depends(security.admin)

    @router.get("/api/v1/notifications")
    async def list_notifications(
        _: AccessTokenClaims = admin,
        user_id: Annotated[uuid.UUID | None, Query(alias="userId")] = None,
        type_: Annotated[api.NotificationType | None, Query(alias="type")] = None,
        limit: Annotated[int, Query(ge=1, le=100)] = 20,
        cursor: Annotated[str | None, Query(pattern=cursors.CURSOR_PATTERN)] = None,
    ) -> JSONResponse:
        kind = None if type_ is None else NotificationType(type_.value)
        after = None if cursor is None else decode_cursor(cursor)
        query = ListNotifications(limit=limit, user_id=user_id, kind=kind, after=after)
        page = await handlers.list_notifications(query, deps)
        body = api.NotificationPage(
            items=[_item(entry) for entry in page.items],
            nextCursor=None if page.next is None else encode_cursor(page.next),
        )
        return JSONResponse(body.model_dump(mode="json"))

    @router.get("/health/live")
    async def live() -> JSONResponse:
        return JSONResponse(api.HealthStatus(status="ok").model_dump(mode="json"))

    @router.get("/health/ready")
    async def ready() -> JSONResponse:
        results = await asyncio.gather(
            asyncio.wait_for(database_ping(), READY_CHECK_SECONDS),
            asyncio.wait_for(sender.ping(), READY_CHECK_SECONDS),
            return_exceptions=True,
        )
        database, smtp = (result is True for result in results)
        checks = {
            "database": api.ReadinessStatus.ok if database else api.ReadinessStatus.unavailable,
            "smtp": api.ReadinessStatus.ok if smtp else api.ReadinessStatus.unavailable,
        }
        healthy = all(status is api.ReadinessStatus.ok for status in checks.values())
        body = api.Readiness(
            status=api.ReadinessStatus.ok if healthy else api.ReadinessStatus.unavailable,
            checks=checks,
        )
        return JSONResponse(body.model_dump(mode="json"), status_code=200 if healthy else 503)

    return router
