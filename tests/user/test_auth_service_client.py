"""The user service and the auth service over real HTTP: `AuthServiceRoles` over the kit's
client policy (service key, timeout, bounded retries, cache) against a stub auth service on a
real socket, and the whole service fetching its keys and roles from it, before and after the
auth service goes down."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from generated.auth.client import AuthServiceClient
from generated.events import models as events
from services.kit.auth_client import AuthClient, ClientPolicy
from services.kit.bus import Delivery
from services.kit.events import encode
from services.kit.memory import InMemoryBroker, InMemoryEventConsumer
from services.kit.topology import QueueSpec
from services.user import consumers
from services.user.app import build_adapters
from services.user.domain import DependencyUnavailableError
from services.user.roles import AuthServiceRoles
from services.user.storage import SqlUserStore
from tests import factories
from tests.user.auth_stub import AuthStub, Failure, closed_port_url
from tests.user.conftest import ADMIN_ROLES, FAST, Tokens, running, user_settings

SERVICE_KEY = "a-service-key-long-enough"


@pytest.fixture(autouse=True)
def memory_bus(monkeypatch: pytest.MonkeyPatch) -> None:
    """`build_adapters` detects the bus from the environment: here, the in-memory one."""
    for name in ("AWS_ENDPOINT_URL", "LOCALSTACK_ENDPOINT", "ACCORD_ENV"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def auth(tokens: Tokens) -> Iterator[AuthStub]:
    stub = AuthStub(SERVICE_KEY, tokens.jwks).start()
    yield stub
    stub.stop()


@pytest.fixture
async def http(auth: AuthStub) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=auth.url) as client:
        yield client


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def roles_client(
    http: httpx.AsyncClient,
    *,
    key: str = SERVICE_KEY,
    clock: Clock | None = None,
    **options: float,
) -> AuthServiceRoles:
    """`http`'s base URL is the auth service's."""
    settings: dict[str, float] = {"timeout": 0.3, "retries": 2, "backoff": 0.01}
    settings.update(options)
    policy = ClientPolicy(
        timeout=settings["timeout"],
        retries=int(settings["retries"]),
        backoff=settings["backoff"],
        cache_seconds=settings.get("cache_seconds", 10.0),
    )
    client = AuthServiceClient(http, service_api_key=key)
    return AuthServiceRoles(AuthClient(client, policy, clock=clock or time.monotonic))


async def test_roles_are_read_with_the_service_key(auth: AuthStub, http: httpx.AsyncClient) -> None:
    user_id = uuid.uuid4()
    auth.roles[str(user_id)] = ["user", "admin"]

    roles = await roles_client(http).roles(user_id)

    assert roles == frozenset({"user", "admin"})
    assert auth.roles_requests == [SERVICE_KEY]


async def test_a_user_the_auth_service_does_not_know_has_no_roles(
    auth: AuthStub, http: httpx.AsyncClient
) -> None:
    assert await roles_client(http).roles(uuid.uuid4()) is None


async def test_an_answer_is_reused_until_the_cache_expires(
    auth: AuthStub, http: httpx.AsyncClient
) -> None:
    user_id = uuid.uuid4()
    auth.roles[str(user_id)] = ["user", "admin"]
    clock = Clock()
    client = roles_client(http, cache_seconds=10, clock=clock)

    await client.roles(user_id)
    clock.now += 9
    auth.roles[str(user_id)] = ["user"]  # revoked: not seen until the cache expires
    cached = await client.roles(user_id)
    clock.now += 2
    fresh = await client.roles(user_id)

    assert cached == frozenset({"user", "admin"})
    assert fresh == frozenset({"user"})
    assert len(auth.roles_requests) == 2


async def test_a_deactivation_event_drops_the_cached_roles_of_its_user(
    auth: AuthStub, http: httpx.AsyncClient, database_url: str
) -> None:
    admin, other = uuid.uuid4(), uuid.uuid4()
    auth.roles[str(admin)] = ["user", "admin"]
    auth.roles[str(other)] = ["user", "admin"]
    client = roles_client(http, cache_seconds=3600, clock=Clock())
    store = SqlUserStore(database_url)
    await store.migrate()
    try:
        await client.roles(admin)
        await client.roles(other)
        del auth.roles[str(admin)]  # deactivated: the auth service answers 404 from now on
        handle = consumers.event_handlers(store, lambda: datetime.now(UTC), roles=client)
        deactivated = events.UserDeactivatedPayload(
            eventId=uuid.uuid4(),
            eventType="user.deactivated",
            schemaVersion="1.0.0",
            sequence=2,
            userId=admin,
            email="admin@example.com",
            timestamp=datetime.now(UTC),
            source="auth-service",
        )
        await handle["user.deactivated"](deactivated, Delivery("user-service", "m-1", 1))
        after = await client.roles(admin)
        untouched = await client.roles(other)
    finally:
        await store.dispose()

    assert after is None
    assert untouched == frozenset({"user", "admin"})
    assert len(auth.roles_requests) == 3  # admin, other, and admin again: other stayed cached


async def test_a_5xx_is_retried_and_the_next_answer_used(
    auth: AuthStub, http: httpx.AsyncClient
) -> None:
    user_id = uuid.uuid4()
    auth.roles[str(user_id)] = ["user"]
    auth.failures.extend([Failure(status=503), Failure(status=500)])

    roles = await roles_client(http).roles(user_id)

    assert roles == frozenset({"user"})
    assert len(auth.roles_requests) == 3


async def test_a_slow_answer_times_out_and_is_retried(
    auth: AuthStub, http: httpx.AsyncClient
) -> None:
    user_id = uuid.uuid4()
    auth.roles[str(user_id)] = ["user"]
    auth.failures.append(Failure(delay=2.0))
    started = time.perf_counter()

    roles = await roles_client(http, timeout=0.2).roles(user_id)

    assert roles == frozenset({"user"})
    assert time.perf_counter() - started < 1.5
    assert len(auth.roles_requests) == 2


async def test_an_auth_service_that_keeps_failing_costs_a_bounded_number_of_attempts(
    auth: AuthStub, http: httpx.AsyncClient
) -> None:
    auth.always = Failure(delay=0.5)
    started = time.perf_counter()

    with pytest.raises(DependencyUnavailableError):
        await roles_client(http, timeout=0.1, retries=2).roles(uuid.uuid4())

    assert len(auth.roles_requests) == 3
    assert time.perf_counter() - started < 1.0


async def test_an_auth_service_that_is_not_listening_is_unavailable() -> None:
    async with httpx.AsyncClient(base_url=closed_port_url()) as http:
        client = roles_client(http)

        with pytest.raises(DependencyUnavailableError):
            await client.roles(uuid.uuid4())
        assert await client.reachable() is False


async def test_a_refused_service_key_is_unavailable_without_retrying(
    auth: AuthStub, http: httpx.AsyncClient
) -> None:
    with pytest.raises(DependencyUnavailableError):
        await roles_client(http, key="not-the-key").roles(uuid.uuid4())

    assert auth.roles_requests == ["not-the-key"]


async def test_concurrent_look_ups_of_one_user_share_one_request(
    auth: AuthStub, http: httpx.AsyncClient
) -> None:
    user_id = uuid.uuid4()
    auth.roles[str(user_id)] = ["user"]
    auth.failures.append(Failure(delay=0.2))
    client = roles_client(http, timeout=1.0)

    answers = await asyncio.gather(*(client.roles(user_id) for _ in range(10)))

    assert set(answers) == {frozenset({"user"})}
    assert len(auth.roles_requests) == 1


async def test_the_auth_service_is_reachable_while_it_answers(
    auth: AuthStub, http: httpx.AsyncClient
) -> None:
    client = roles_client(http)

    up = await client.reachable()
    auth.stop()
    down = await client.reachable()

    assert (up, down) == (True, False)


# --- the whole service ------------------------------------------------------------------------


async def test_the_service_uses_the_auth_services_keys_and_roles_and_survives_its_outage(
    auth: AuthStub, tokens: Tokens, tmp_path: Path, unique_prefix: str
) -> None:
    owner, admin = uuid.uuid4(), uuid.uuid4()
    auth.roles[str(owner)] = ["user"]
    auth.roles[str(admin)] = list(ADMIN_ROLES)
    queue = unique_prefix + "users"
    broker = InMemoryBroker()
    broker.create_queue(QueueSpec(queue))
    settings = user_settings(
        f"sqlite:///{tmp_path}/user.db",
        auth_service_url=auth.url,
        auth_service_api_key=SERVICE_KEY,
        auth_service_timeout_seconds=0.2,
        auth_service_retries=1,
        roles_cache_seconds=0,
        queue=queue,
    )
    adapters = replace(
        build_adapters(settings), consumer=InMemoryEventConsumer(broker, queue, FAST)
    )
    owner_headers = tokens.headers(owner)
    admin_headers = tokens.headers(admin, ADMIN_ROLES)

    async with running(settings, adapters) as http:
        broker.send(queue, encode(factories.user_created(owner)))
        while broker.depth(queue):
            await asyncio.sleep(0.01)
        own_before = await http.get(f"/api/v1/users/{owner}", headers=owner_headers)
        admin_before = await http.get(f"/api/v1/users/{owner}", headers=admin_headers)
        ready_before = await http.get("/health/ready")

        auth.stop()
        own_after = await http.get(f"/api/v1/users/{owner}", headers=owner_headers)
        admin_after = await http.get(f"/api/v1/users/{owner}", headers=admin_headers)
        list_after = await http.get("/api/v1/users", headers=admin_headers)
        ready_after = await http.get("/health/ready")

    assert [own_before.status_code, admin_before.status_code, ready_before.status_code] == [
        200,
        200,
        200,
    ]
    assert own_after.status_code == 200  # the keys are cached; the token is enough
    for refused in (admin_after, list_after):
        assert refused.status_code == 503
        assert refused.headers["retry-after"] == "5"
        assert refused.json()["type"].endswith("/dependency-unavailable")
    assert ready_after.status_code == 503
    assert ready_after.json()["checks"]["authService"] == "unavailable"


async def test_without_the_auth_services_keys_requests_answer_503_not_401(
    tokens: Tokens, tmp_path: Path, unique_prefix: str
) -> None:
    settings = user_settings(
        f"sqlite:///{tmp_path}/user.db",
        auth_service_url=closed_port_url(),
        auth_service_timeout_seconds=0.2,
        queue=unique_prefix + "users",
        consumer_wait_seconds=0.05,
    )
    user_id = uuid.uuid4()

    async with running(settings, build_adapters(settings)) as http:
        response = await http.get(f"/api/v1/users/{user_id}", headers=tokens.headers(user_id))

    assert response.status_code == 503
    assert response.headers["retry-after"] == "5"
    assert response.json()["type"].endswith("/dependency-unavailable")
