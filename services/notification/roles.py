"""`RoleDirectory` adapters: the auth service's `getUserRoles`
(`GET /api/v1/auth/users/{userId}/roles` of `contracts/openapi/auth-service.yaml`, with the
service credential in `X-API-Key`), and a fixed directory in memory.

The HTTP adapter uses a timeout, a bounded number of attempts and a short cache: the role
decision it backs (`admin` for the notification log) must be authoritative, but not cost a
round trip per request.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import OrderedDict
from collections.abc import Mapping

import httpx
from pydantic import ValidationError

from generated.auth import models as auth_api
from services.notification.domain import RolesUnavailableError

log = logging.getLogger("accord.notification")

MAX_CACHED_USERS = 10_000


class HttpRoleDirectory:
    """Asks the auth service for a user's roles, and remembers the answer for a little while."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        base_url: str,
        api_key: str,
        *,
        timeout: float = 2.0,
        attempts: int = 2,
        cache_seconds: float = 30.0,
    ) -> None:
        self._client = client
        self._base_url = base_url.rstrip("/")
        self._api_key = api_key
        self._timeout = timeout
        self._attempts = max(1, attempts)
        self._cache_seconds = cache_seconds
        self._cache: OrderedDict[str, tuple[float, frozenset[str]]] = OrderedDict()

    async def roles(self, user_id: str) -> frozenset[str]:
        now = time.monotonic()
        cached = self._cache.get(user_id)
        if cached is not None and cached[0] > now:
            return cached[1]
        try:
            uuid.UUID(user_id)
        except ValueError:
            return frozenset()  # auth ids are UUIDs; nothing else has roles
        roles = await self._fetch(user_id)
        self._cache[user_id] = (now + self._cache_seconds, roles)
        self._cache.move_to_end(user_id)
        while len(self._cache) > MAX_CACHED_USERS:
            self._cache.popitem(last=False)
        return roles

    def evict(self, user_id: str) -> None:
        self._cache.pop(user_id, None)

    async def _fetch(self, user_id: str) -> frozenset[str]:
        url = f"{self._base_url}/api/v1/auth/users/{user_id}/roles"
        failure = "no attempt was made"
        for attempt in range(self._attempts):
            if attempt:
                await asyncio.sleep(0.1 * 2**attempt)
            try:
                response = await self._client.get(
                    url,
                    headers={"X-API-Key": self._api_key, "Accept": "application/json"},
                    timeout=self._timeout,
                )
            except httpx.HTTPError as error:
                failure = f"{type(error).__name__}"
                continue
            if response.status_code == httpx.codes.NOT_FOUND:
                return frozenset()
            if response.status_code == httpx.codes.OK:
                try:
                    body = auth_api.UserRoles.model_validate_json(response.content)
                except ValidationError:
                    raise RolesUnavailableError(
                        "the auth service answered roles that do not match its contract"
                    ) from None
                return frozenset(str(role.value) for role in body.roles)
            if response.status_code in (httpx.codes.UNAUTHORIZED, httpx.codes.FORBIDDEN):
                # Our credential is refused: a configuration error, and retrying cannot help.
                log.error(
                    "the auth service refused NOTIFICATION_AUTH_SERVICE_API_KEY (%d)",
                    response.status_code,
                )
                raise RolesUnavailableError("the auth service refused this service's credential")
            failure = f"status {response.status_code}"
        raise RolesUnavailableError(f"the auth service could not be reached ({failure})")


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
