"""`RolesClient` adapters. `AuthServiceRoles` asks the auth service (`getUserRoles`, with the
service credential) through the kit's client policy (`services/kit/auth_client.py`: timeout,
bounded retries, coalescing, a short cache), and turns its `AuthServiceUnavailableError` into
the domain's `DependencyUnavailableError` (503); `InMemoryRolesClient` answers from a table, for
tests and provider states.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping

from services.kit.auth_client import AuthClient, AuthServiceUnavailableError
from services.user.domain import DependencyUnavailableError


class AuthServiceRoles:
    """`RolesClient` over the kit's `AuthClient`."""

    def __init__(self, client: AuthClient) -> None:
        self._client = client

    async def roles(self, user_id: uuid.UUID) -> frozenset[str] | None:
        try:
            return await self._client.roles(user_id)
        except AuthServiceUnavailableError as error:
            raise DependencyUnavailableError(
                "The auth service cannot be reached to confirm the admin role."
            ) from error

    async def reachable(self) -> bool:
        return await self._client.reachable()

    def evict(self, user_id: uuid.UUID) -> None:
        self._client.evict(user_id)


class InMemoryRolesClient:
    """`RolesClient` answering from a table of user id → roles (tests, provider states)."""

    def __init__(self, roles: Mapping[uuid.UUID, Iterable[str]] | None = None) -> None:
        self._roles = {user: frozenset(given) for user, given in (roles or {}).items()}

    def set(self, user_id: uuid.UUID, roles: Iterable[str]) -> None:
        self._roles[user_id] = frozenset(roles)

    def forget(self, user_id: uuid.UUID) -> None:
        self._roles.pop(user_id, None)

    async def roles(self, user_id: uuid.UUID) -> frozenset[str] | None:
        return self._roles.get(user_id)

    async def reachable(self) -> bool:
        return True

    def evict(self, user_id: uuid.UUID) -> None:
        """Nothing is cached here."""
