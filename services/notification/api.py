"""The HTTP face of `contracts/openapi/notification-service.yaml`: `listNotifications` (admin)
and the health probes. Routes are thin: query parameters → command → handler → the generated
response model.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse

from generated.notification import models as api
from services.kit import cursors
from services.kit.http import Problem, ProblemError, dependency_unavailable
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


@dataclass(frozen=True)
class Services:
    """What the routes use, set on `app.state.services` by the app's lifespan."""

    deps: handlers.Dependencies
    tokens: TokenVerifier
    roles: RoleDirectory | None  # None: the token's `roles` claim is trusted (local mode)
    database_ping: Callable[[], Awaitable[bool]]
    sender: EmailSender


def _services(request: Request) -> Services:
    found: Services = request.app.state.services
    return found


# --- authentication and authorization --------------------------------------------------


def _unauthenticated(detail: str, error: str | None) -> ProblemError:
    challenge = 'Bearer realm="accord"'
    if error is not None:
        challenge += f', error="{error}"'
    return ProblemError(
        Problem.of(
            401,
            "unauthenticated",
            "Unauthenticated",
            detail,
            headers={"WWW-Authenticate": challenge},
        )
    )


def _unavailable(detail: str) -> ProblemError:
    return ProblemError(dependency_unavailable(detail, RETRY_AFTER_SECONDS))


def _bearer_token(header: str | None) -> str | None:
    if header is None:
        return None
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


async def require_admin(request: Request) -> AccessTokenClaims:
    """The verified claims of an admin's access token; 401, 403 or 503 otherwise."""
    found = _services(request)
    token = _bearer_token(request.headers.get("authorization"))
    if token is None:
        raise _unauthenticated("A bearer access token is required.", None)
    try:
        claims = await found.tokens.verify(token)
    except InvalidTokenError as error:
        raise _unauthenticated(
            f"The access token is refused: {error.reason}.", "invalid_token"
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
    if found.roles is not None:
        try:
            roles = await found.roles.roles(claims.subject)
        except RolesUnavailableError:
            raise _unavailable(
                "The auth service cannot be reached to confirm the admin role."
            ) from None
        if ADMIN not in roles:
            raise forbidden
    return claims


Admin = Annotated[AccessTokenClaims, Depends(require_admin)]


# --- cursors ------------------------------------------------------------------------------


def encode_cursor(position: Position) -> str:
    """The `nextCursor` of a page that ends at this entry. It names the position only, so it
    continues the list with the filters of the request it is sent with."""
    return cursors.encode_cursor(position.created_at, position.id)


def decode_cursor(cursor: str) -> Position:
    """Where a `cursor` (already matched against the contract's pattern) continues."""
    return Position(*cursors.decode_cursor(cursor))


# --- routes -------------------------------------------------------------------------------

router = APIRouter()


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


@router.get("/api/v1/notifications")
async def list_notifications(
    request: Request,
    _: Admin,
    user_id: Annotated[uuid.UUID | None, Query(alias="userId")] = None,
    type_: Annotated[api.NotificationType | None, Query(alias="type")] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(pattern=cursors.CURSOR_PATTERN)] = None,
) -> JSONResponse:
    kind = None if type_ is None else NotificationType(type_.value)
    after = None if cursor is None else decode_cursor(cursor)
    query = ListNotifications(limit=limit, user_id=user_id, kind=kind, after=after)
    page = await handlers.list_notifications(query, _services(request).deps)
    body = api.NotificationPage(
        items=[_item(entry) for entry in page.items],
        nextCursor=None if page.next is None else encode_cursor(page.next),
    )
    return JSONResponse(body.model_dump(mode="json"))


@router.get("/health/live")
async def live() -> JSONResponse:
    return JSONResponse(api.HealthStatus(status="ok").model_dump(mode="json"))


@router.get("/health/ready")
async def ready(request: Request) -> JSONResponse:
    found = _services(request)
    results = await asyncio.gather(
        asyncio.wait_for(found.database_ping(), READY_CHECK_SECONDS),
        asyncio.wait_for(found.sender.ping(), READY_CHECK_SECONDS),
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
