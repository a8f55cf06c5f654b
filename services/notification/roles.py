"""`RoleDirectory` adapters. `AuthServiceRoleDirectory` asks the auth service (`getUserRoles`,
with the service credential) through the kit's client policy (`services/kit/auth_client.py`:
timeout, bounded retries, coalescing, a short cache): an unknown user, or an id that is no auth
id (a UUID), holds no role, and `AuthServiceUnavailableError` becomes the domain's
`RolesUnavailableError` (503). `StaticRoleDirectory` answers from a fixed map, for tests.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Mapping

from services.kit.auth_client import AuthClient, AuthServiceUnavailableError
from services.notification.domain import RolesUnavailableError


class AuthServiceRoleDirectory:
    """`RoleDirectory` over the kit's `AuthClient`."""

    def __init__(self, client: AuthClient) -> None:
        self._client = client

    async def roles(self, user_id: str) -> frozenset[str]:
        try:
            known = uuid.UUID(user_id)
        except ValueError:
            return frozenset()  # auth ids are UUIDs; nothing else has roles
        try:
            return await self._client.roles(known) or frozenset()
        except AuthServiceUnavailableError as error:
            raise RolesUnavailableError(error.reason) from error

    def evict(self, user_id: str) -> None:
        with contextlib.suppress(ValueError):  # not an auth id: never asked, never cached
            self._client.evict(uuid.UUID(user_id))


class StaticRoleDirectory:
    """Answers from a fixed map of user id → roles; `available = False` plays an outage."""

    def __init__(self, roles: Mapping[str, frozenset[str]] | None = None) -> None:
        self.users: dict[str, frozenset[str]] = dict(roles or {})
        self.available = True

    async def roles(self, user_id: str) -> frozenset[str]:
        if not self.available:
            raise RolesUnavailableError("the role directory is unavailable")
        return self.users.get(user_id, frozenset())

    def evict(self, user_id: str) -> None:
        """Nothing is cached here."""
