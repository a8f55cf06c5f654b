"""`RolesClient` adapters. `HttpRolesClient` calls the auth service's `getUserRoles`
(`GET /api/v1/auth/users/{userId}/roles` in `contracts/openapi/auth-service.yaml`) with the
service credential (`X-API-Key`); `InMemoryRolesClient` answers from a table, for tests and
provider states.

The HTTP client bounds what an admin request can cost when the auth service is slow or down:
each attempt has a timeout; a timeout, a connection error, a 429 or a 5xx is tried again a few
times after a short exponential pause, and then the answer is `DependencyUnavailableError`
(503). Answers are cached briefly, and concurrent look-ups of one user share one request.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Final

import httpx
from pydantic import ValidationError

from generated.auth import models as auth_api
from services.user.domain import DependencyUnavailableError

log = logging.getLogger("accord.user.roles")

ROLES_PATH: Final = "/api/v1/auth/users/{user_id}/roles"
LIVENESS_PATH: Final = "/health/live"
API_KEY_HEADER: Final = "X-API-Key"
MAX_CACHED_USERS: Final = 10_000
RETRIED_STATUSES: Final = frozenset({429, 500, 502, 503, 504})


class _RetryableError(Exception):
    """An attempt that failed in a way worth trying again."""


class HttpRolesClient:
    """`RolesClient` over HTTP with a timeout, bounded retries and a short TTL cache."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        base_url: str,
        api_key: str,
        *,
        timeout: float = 1.0,
        retries: int = 2,
        retry_delay: float = 0.05,
        cache_seconds: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._client = client
        self._base_url = base_url.rstrip("/")
        self._api_key = api_key
        self._timeout = timeout
        self._retries = retries
        self._retry_delay = retry_delay
        self._cache_seconds = cache_seconds
        self._clock = clock
        self._sleep = sleep
        self._cache: OrderedDict[uuid.UUID, tuple[float, frozenset[str] | None]] = OrderedDict()
        self._in_flight: dict[uuid.UUID, asyncio.Task[frozenset[str] | None]] = {}

    async def roles(self, user_id: uuid.UUID) -> frozenset[str] | None:
        cached = self._cache.get(user_id)
        if cached is not None and cached[0] > self._clock():
            return cached[1]
        task = self._in_flight.get(user_id)
        if task is None:
            task = asyncio.create_task(self._fetch(user_id), name=f"roles:{user_id}")
            self._in_flight[user_id] = task
            task.add_done_callback(lambda done: self._settle(user_id, done))
        # Shielded: a caller that goes away does not cancel the look-up the others wait for.
        return await asyncio.shield(task)

    def evict(self, user_id: uuid.UUID) -> None:
        self._cache.pop(user_id, None)

    def _settle(self, user_id: uuid.UUID, task: asyncio.Task[frozenset[str] | None]) -> None:
        self._in_flight.pop(user_id, None)
        if not task.cancelled() and task.exception() is None:
            self._remember(user_id, task.result())

    def _remember(self, user_id: uuid.UUID, roles: frozenset[str] | None) -> None:
        # An unknown user is not cached: it may be registering right now, and "pending" beats
        # "not found" for a profile that is about to exist.
        if self._cache_seconds <= 0 or roles is None:
            return
        self._cache[user_id] = (self._clock() + self._cache_seconds, roles)
        self._cache.move_to_end(user_id)
        while len(self._cache) > MAX_CACHED_USERS:
            self._cache.popitem(last=False)

    async def _fetch(self, user_id: uuid.UUID) -> frozenset[str] | None:
        url = self._base_url + ROLES_PATH.format(user_id=user_id)
        for attempt in range(self._retries + 1):
            if attempt:
                await self._sleep(self._retry_delay * 2 ** (attempt - 1))
            try:
                return await self._attempt(url)
            except _RetryableError as failure:
                log.warning("roles of %s: attempt %d failed: %s", user_id, attempt + 1, failure)
        raise DependencyUnavailableError(
            "The auth service cannot be reached to confirm the admin role."
        )

    async def _attempt(self, url: str) -> frozenset[str] | None:
        try:
            response = await self._client.get(
                url,
                headers={API_KEY_HEADER: self._api_key, "Accept": "application/json"},
                timeout=self._timeout,
            )
        except httpx.TransportError as error:  # timeouts, refused and reset connections
            raise _RetryableError(f"{type(error).__name__}") from None
        if response.status_code == httpx.codes.OK:
            try:
                answer = auth_api.UserRoles.model_validate_json(response.content)
            except ValidationError:
                log.error("the auth service answered roles that break its contract")
                raise DependencyUnavailableError(
                    "The auth service gave an answer this service cannot read."
                ) from None
            return frozenset(role.value for role in answer.roles)
        if response.status_code == httpx.codes.NOT_FOUND:
            return None
        if response.status_code in RETRIED_STATUSES:
            raise _RetryableError(f"status {response.status_code}")
        if response.status_code in (httpx.codes.UNAUTHORIZED, httpx.codes.FORBIDDEN):
            # Not worth retrying: the two services disagree on the service API key.
            log.error(
                "the auth service refused the service credential (%d); check "
                "USER_AUTH_SERVICE_API_KEY against AUTH_SERVICE_API_KEY",
                response.status_code,
            )
        raise DependencyUnavailableError(
            f"The auth service answered {response.status_code} to a roles look-up."
        )

    async def reachable(self) -> bool:
        try:
            response = await self._client.get(self._base_url + LIVENESS_PATH, timeout=self._timeout)
        except httpx.HTTPError:
            return False
        return response.status_code == httpx.codes.OK


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
