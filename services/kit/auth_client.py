"""The one way a service calls the auth service: the generated `AuthServiceClient`
(`generated/auth/client.py`, from `contracts/openapi/auth-service.yaml`) inside the kit's client
policy (`services/kit/calls.py`: a deadline per attempt, bounded retries of timeouts, transport
errors, 429 and 5xx with doubling pauses, `Retry-After` honoured).

Where the policy passes a problem on (a refused service credential, a 404 the operation does
not expect), and whenever the auth service cannot answer, the answer here is
`AuthServiceUnavailableError`, with the reason: no retry can fix it.

`AuthClient.roles` (`getUserRoles`) adds a short cache (`cache_seconds`, with `evict`) and
coalescing: concurrent look-ups of one user share one request. `AuthClient.jwks` (`getJwks`) is
the key-set fetcher (`services.kit.tokens.JwksFetcher`) of a `JwksKeySource`, which caches the
set and rate-limits fetches itself.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any, Final, TypeVar

import httpx

import generated.client
from generated.auth.client import AuthServiceClient, ProblemError
from services.kit import calls
from services.kit.calls import ClientPolicy, ServiceUnavailableError
from services.kit.tokens import KeySourceUnavailableError

__all__ = [
    "JWKS_PATH",
    "MAX_CACHED_USERS",
    "AuthClient",
    "AuthServiceUnavailableError",
    "ClientPolicy",
    "jwks_base_url",
]

log = logging.getLogger("accord.auth_client")

T = TypeVar("T")

# Enough for every user a busy instance confirms within `cache_seconds`; the oldest go first.
MAX_CACHED_USERS: Final = 10_000
JWKS_PATH: Final = "/.well-known/jwks.json"


class AuthServiceUnavailableError(ServiceUnavailableError):
    """The auth service gave no usable answer within the policy; `reason` says what happened."""


def jwks_base_url(url: str, setting: str) -> str:
    """The auth service's base URL from the URL of its key set (`<base>/.well-known/jwks.json`,
    `getJwks`); a `ValueError` naming `setting` for a URL of another form."""
    path = httpx.URL(url).path
    if not path.endswith(JWKS_PATH):
        raise ValueError(
            f"{setting} must end with {JWKS_PATH} (the auth service's getJwks), not {url!r}"
        )
    return url[: url.rindex(JWKS_PATH)]


class AuthClient:
    """The auth service's operations a service needs (roles, key set, liveness) under one
    `ClientPolicy`, around the generated `AuthServiceClient`.

    `credential` names the setting that holds the service API key, for the log line when the
    auth service refuses it."""

    def __init__(
        self,
        client: AuthServiceClient,
        policy: ClientPolicy | None = None,
        *,
        credential: str = "the service API key",
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._client = client
        self._policy = policy or ClientPolicy()
        self._credential = credential
        self._clock = clock
        self._sleep = sleep
        self._cache: OrderedDict[uuid.UUID, tuple[float, frozenset[str]]] = OrderedDict()
        self._in_flight: dict[uuid.UUID, asyncio.Task[frozenset[str] | None]] = {}

    @classmethod
    def over(
        cls,
        http: httpx.AsyncClient,
        policy: ClientPolicy | None = None,
        *,
        service_api_key: str | None = None,
        credential: str = "the service API key",
    ) -> AuthClient:
        """The policy around a generated client over `http`, whose base URL is the auth
        service's, sending `service_api_key` where an operation takes it."""
        client = AuthServiceClient(http, service_api_key=service_api_key)
        return cls(client, policy, credential=credential)

    # --- getUserRoles --------------------------------------------------------------------

    async def roles(self, user_id: uuid.UUID) -> frozenset[str] | None:
        """The user's roles; None if the auth service knows no such user;
        `AuthServiceUnavailableError` if it cannot answer."""
        cached = self._cache.get(user_id)
        if cached is not None and cached[0] > self._clock():
            return cached[1]
        task = self._in_flight.get(user_id)
        if task is None:
            task = asyncio.create_task(self._look_up(user_id), name=f"roles:{user_id}")
            self._in_flight[user_id] = task
            task.add_done_callback(partial(self._settle, user_id))
        # Shielded: a caller that goes away does not cancel the look-up the others wait for.
        return await asyncio.shield(task)

    def evict(self, user_id: uuid.UUID) -> None:
        """Forget what is known of the user's roles, whose account has just changed: the cached
        answer, and the one on its way (which may predate the change: its callers get it, the
        cache does not)."""
        self._cache.pop(user_id, None)
        self._in_flight.pop(user_id, None)

    async def _look_up(self, user_id: uuid.UUID) -> frozenset[str] | None:
        async def get(client: AuthServiceClient) -> frozenset[str] | None:
            try:
                answer = await client.get_user_roles(user_id=user_id)
            except ProblemError as error:
                if error.status == httpx.codes.NOT_FOUND:
                    return None
                raise
            return frozenset(role.value for role in answer.roles)

        return await self.call(get, f"the roles of {user_id}")

    def _settle(self, user_id: uuid.UUID, task: asyncio.Task[frozenset[str] | None]) -> None:
        failed = task.cancelled() or task.exception() is not None  # retrieved: never "unseen"
        if self._in_flight.get(user_id) is not task:
            return  # evicted while on its way
        del self._in_flight[user_id]
        roles = None if failed else task.result()
        # An unknown user is not cached: it may be registering right now.
        if roles is None or self._policy.cache_seconds <= 0:
            return
        self._cache[user_id] = (self._clock() + self._policy.cache_seconds, roles)
        self._cache.move_to_end(user_id)
        while len(self._cache) > MAX_CACHED_USERS:
            self._cache.popitem(last=False)

    # --- getJwks, getLiveness --------------------------------------------------------------

    async def jwks(self) -> dict[str, Any]:
        """The auth service's key set as a JWKS document (`services.kit.tokens.JwksFetcher`);
        `KeySourceUnavailableError` if it cannot be had."""
        try:
            answer = await self.call(AuthServiceClient.get_jwks, "the key set")
        except AuthServiceUnavailableError as error:
            raise KeySourceUnavailableError(error.reason) from error
        return answer.body.model_dump(mode="json", exclude_none=True)

    async def reachable(self) -> bool:
        """Whether the auth service answers its liveness probe, in one attempt (readiness)."""
        try:
            async with asyncio.timeout(self._policy.timeout):
                await self._client.get_liveness()
        except (TimeoutError, httpx.HTTPError, ProblemError, ValueError):
            return False
        return True

    # --- the policy ------------------------------------------------------------------------

    async def call(self, operation: Callable[[AuthServiceClient], Awaitable[T]], what: str) -> T:
        """`operation` on the generated client under the policy (`services.kit.calls.call`): its
        answer, or `AuthServiceUnavailableError` naming what was asked (`what`)."""
        try:
            return await calls.call(
                self._policy,
                partial(operation, self._client),
                what,
                service="the auth service",
                sleep=self._sleep,
            )
        except ServiceUnavailableError as error:
            raise AuthServiceUnavailableError(error.reason, error.retry_after) from None
        except generated.client.ProblemError as error:
            raise self._refused(what, error.status) from None

    def _refused(self, what: str, status: int) -> AuthServiceUnavailableError:
        if status in (httpx.codes.UNAUTHORIZED, httpx.codes.FORBIDDEN):
            log.error("the auth service refused %s (%d)", self._credential, status)
            return AuthServiceUnavailableError(
                f"{what}: the auth service refused {self._credential} ({status})"
            )
        return AuthServiceUnavailableError(f"{what}: the auth service answered {status}")
