"""Fixtures for the auth service suites: the service on SQLite and on PostgreSQL, behind an
in-process HTTP client, publishing to an in-memory broker whose queue the tests read."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.auth.app import Adapters, build_adapters, create_app
from services.auth.grants import grant_role
from services.auth.settings import Settings
from services.kit.bus import EventPublisher
from services.kit.events import Event, Message, decode
from services.kit.memory import InMemoryBroker, InMemoryEventPublisher
from services.kit.topology import QueueSpec, SubscriptionSpec, TopicSpec, Topology

PASSWORD = "correct-horse-battery-staple"


class Clock:
    """Real time plus an offset that a test can move forward."""

    def __init__(self) -> None:
        self.offset = timedelta()

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def advance(self, delta: timedelta) -> None:
        self.offset += delta


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The auth database: a SQLite file, or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'auth.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    """Local-mode settings with cheap Argon2 parameters and limits no test reaches by accident."""
    return Settings(
        environment="local",
        database_url=database_url,
        signing_key_path=tmp_path / "signing-key.pem",
        argon2_time_cost=1,
        argon2_memory_cost_kib=1024,
        argon2_parallelism=1,
        login_failures_per_account_address=1000,
        login_failures_per_address=1000,
        registrations_per_address=1000,
        reset_requests_per_email=1000,
        reset_requests_per_address=1000,
        verification_requests_per_account=1000,
        outbox_poll_seconds=0.5,
        outbox_backoff_base_seconds=0.05,
        outbox_backoff_cap_seconds=0.2,
    )


@pytest.fixture
def clock() -> Clock:
    return Clock()


@dataclass
class Bus:
    """An in-memory topic with one queue subscribed to every event, read back by the tests."""

    broker: InMemoryBroker
    topic: str
    queue: str
    received: list[Message] = field(default_factory=list)

    def publisher(self) -> InMemoryEventPublisher:
        return InMemoryEventPublisher(self.broker, self.topic)

    def drain(self) -> list[Message]:
        while batch := self.broker.receive_now(self.queue, 10):
            self.received.extend(item.message for item in batch)
            self.broker.delete(self.queue, [item.receipt for item in batch])
        return self.received

    def events(self) -> list[Event]:
        return [decode(message) for message in self.drain()]

    async def wait_for(self, count: int, seconds: float = 10.0) -> list[Event]:
        """Every event received so far, once there are at least `count`."""
        deadline = asyncio.get_running_loop().time() + seconds
        while len(self.drain()) < count:
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"{len(self.received)} events arrived, expected {count}")
            await asyncio.sleep(0.01)
        return self.events()

    async def settle(self, seconds: float = 0.3) -> list[Event]:
        """The events received after giving the relay time to publish anything pending."""
        await asyncio.sleep(seconds)
        return self.events()


@pytest.fixture
def bus(unique_prefix: str) -> Bus:
    broker = InMemoryBroker()
    topic, queue = unique_prefix + "user-events", unique_prefix + "everything"
    broker.apply(
        Topology(
            topics=(TopicSpec(topic),),
            queues=(QueueSpec(queue),),
            subscriptions=(SubscriptionSpec(topic, queue),),
        )
    )
    return Bus(broker, topic, queue)


@dataclass
class AuthClient:
    """The running service, an HTTP client on it, and shortcuts for the common requests."""

    http: httpx.AsyncClient
    settings: Settings
    adapters: Adapters
    bus: Bus

    async def register(self, email: str | None = None, password: str = PASSWORD) -> dict[str, Any]:
        email = email or f"user-{uuid.uuid4().hex[:12]}@example.com"
        response = await self.http.post(
            "/api/v1/auth/register", json={"email": email, "password": password}
        )
        assert response.status_code == 201, response.text
        body: dict[str, Any] = response.json()
        body["email"] = email
        body["password"] = password
        return body

    async def login(self, email: str, password: str = PASSWORD) -> httpx.Response:
        return await self.http.post(
            "/api/v1/auth/login", json={"email": email, "password": password}
        )

    async def admin(self) -> dict[str, Any]:
        """A registered user granted `admin` (as `accord roles grant` does), logged in again."""
        user = await self.register()
        await grant_role(self.settings.database_url, user["email"], "admin")
        response = await self.login(user["email"])
        assert response.status_code == 200, response.text
        return {**user, **response.json()}


def bearer(tokens: Mapping[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {tokens['accessToken']}"}


AppFactory = Callable[..., AbstractAsyncContextManager[AuthClient]]


@pytest.fixture
def start_auth(settings: Settings, bus: Bus, clock: Clock) -> AppFactory:
    """Starts the service (lifespan included) with the test's bus and clock; keyword
    arguments override settings, `publisher=` replaces the bus, `client=` sets the caller's
    address."""

    @asynccontextmanager
    async def start(
        *,
        publisher: EventPublisher | None = None,
        client: tuple[str, int] = ("127.0.0.1", 50000),
        **overrides: Any,
    ) -> AsyncIterator[AuthClient]:
        effective = settings.model_copy(update=overrides)
        adapters = replace(
            build_adapters(effective, clock=clock), publisher=publisher or bus.publisher()
        )
        app = create_app(effective, adapters=adapters)
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app, client=client)
            async with httpx.AsyncClient(transport=transport, base_url="http://auth") as http:
                yield AuthClient(http, effective, adapters, bus)

    return start


@pytest.fixture
async def auth(start_auth: AppFactory) -> AsyncIterator[AuthClient]:
    async with start_auth() as running:
        yield running
