"""The HTTP API of `contracts/openapi/notification-service.yaml`, on the generated layer.

`generated.notification.server.build_router` binds every operation of the contract (method,
path, parameters, statuses) and admits each caller as the operation's `security` says, through
the kit's `ContractAuthenticator`; this module supplies what the contract cannot:
`NotificationApi`, the implementation of `NotificationServiceInterface` (query parameters →
command → handler → generated response model), and `confirmed_roles`, the role authority that
asks the auth service (the `RoleDirectory` port) to confirm a caller's roles at request time.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import Final

from generated.notification import models as api
from generated.notification.responses import GetReadinessResponse
from generated.notification.server import NotificationServiceInterface
from generated.security import Caller
from services.kit import cursors
from services.kit.metrics import Metrics
from services.kit.security import AuthorityUnavailableError, ConfirmedRoles
from services.notification import handlers
from services.notification.domain import (
    ListNotifications,
    Notification,
    NotificationType,
    Position,
    RolesUnavailableError,
)
from services.notification.ports import EmailSender, RoleDirectory

# Seconds a client is told to wait when a dependency (database, keys, roles) cannot be reached.
RETRY_AFTER_SECONDS: Final = 5
READY_CHECK_SECONDS: Final = 3.0


def confirmed_roles(directory: RoleDirectory | None) -> ConfirmedRoles:
    """The role authority of the notification service: the token's roles, confirmed now by the
    auth service through `directory` (None: the token's claim is trusted, in local mode
    without a service credential)."""
    if directory is None:
        return ConfirmedRoles(None)

    async def lookup(user_id: uuid.UUID) -> frozenset[str]:
        try:
            return await directory.roles(str(user_id))
        except RolesUnavailableError as error:
            raise AuthorityUnavailableError(str(error)) from None

    return ConfirmedRoles(lookup)


# --- cursors ------------------------------------------------------------------------------


def encode_cursor(position: Position) -> str:
    """The `nextCursor` of a page that ends at this entry. It names the position only, so it
    continues the list with the filters of the request it is sent with."""
    return cursors.encode_cursor(position.created_at, position.id)


def decode_cursor(cursor: str) -> Position:
    """Where a `cursor` (already matched against the contract's pattern) continues."""
    return Position(*cursors.decode_cursor(cursor))


# --- the operations -------------------------------------------------------------------------


def _item(entry: Notification) -> api.Notification:
    return api.Notification(
        id=entry.id,
        eventId=entry.event_id,
        userId=entry.user_id,
        type=api.NotificationType(entry.kind.value),
        channel=entry.channel,
        status=api.NotificationStatus(entry.status.value),
        recipient=entry.recipient,
        subject=entry.subject,
        reason=entry.reason,
        createdAt=entry.created_at,
        sentAt=entry.sent_at,
    )


class NotificationApi(NotificationServiceInterface):
    """The operations of the contract, on the handlers' dependencies and the adapters that the
    readiness probe checks."""

    def __init__(
        self,
        deps: handlers.Dependencies,
        database_ping: Callable[[], Awaitable[bool]],
        sender: EmailSender,
        *,
        metrics: Metrics | None = None,
    ) -> None:
        self._deps = deps
        self._database_ping = database_ping
        self._sender = sender
        self._metrics = metrics or Metrics.disabled()

    async def list_notifications(
        self,
        *,
        caller: Caller,
        user_id: uuid.UUID | None,
        type: api.NotificationType | None,
        limit: int,
        cursor: str | None,
    ) -> api.NotificationPage:
        kind = None if type is None else NotificationType(type.value)
        after = None if cursor is None else decode_cursor(cursor)
        query = ListNotifications(limit=limit, user_id=user_id, kind=kind, after=after)
        page = await handlers.list_notifications(query, self._deps)
        return api.NotificationPage(
            items=[_item(entry) for entry in page.items],
            nextCursor=None if page.next is None else encode_cursor(page.next),
        )

    async def get_liveness(self) -> api.HealthStatus:
        return api.HealthStatus(status="ok")

    async def get_metrics(self) -> str:
        return await self._metrics.exposition()

    async def get_readiness(self) -> GetReadinessResponse:
        results = await asyncio.gather(
            asyncio.wait_for(self._database_ping(), READY_CHECK_SECONDS),
            asyncio.wait_for(self._sender.ping(), READY_CHECK_SECONDS),
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
        return GetReadinessResponse(status=200 if healthy else 503, body=body)
