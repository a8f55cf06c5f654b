"""Fixtures for the user service suites: the service on SQLite and on PostgreSQL behind an
in-process HTTP client, verifying tokens from a real issuer, consuming from an in-memory queue
that the tests publish to, and asking an in-memory roles table for authoritative roles."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.kit.consumer import Backoff, ConsumerOptions
from services.kit.events import Event, encode
from services.kit.memory import InMemoryBroker, InMemoryEventConsumer
from services.kit.tokens import SigningKey, StaticKeySource, TokenIssuer, TokenVerifier, jwks
from services.kit.topology import QueueSpec
from services.user.app import Adapters, create_app
from services.user.domain import DependencyUnavailableError
from services.user.roles import InMemoryRolesClient
from services.user.settings import Settings
from services.user.storage import SqlUserStore
from tests import factories

ISSUER = "http://127.0.0.1:3001"
AUDIENCE = "accord"
ADMIN_ROLES = ("user", "admin")
FAST = ConsumerOptions(max_in_flight=10, wait_seconds=0.05, backoff=Backoff(base=0))


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The user database: a SQLite file, or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'user.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


class Tokens:
    """Access tokens as the auth service issues them, and the ones it must refuse."""

    def __init__(self, key: SigningKey | None = None) -> None:
        self.key = key or SigningKey.generate()
        self.jwks = jwks(self.key)
        self._issuer = TokenIssuer(
            self.key, issuer=ISSUER, audience=AUDIENCE, ttl=timedelta(minutes=15)
        )

    def verifier(self) -> TokenVerifier:
        return TokenVerifier(StaticKeySource(self.jwks), issuer=ISSUER, audience=AUDIENCE)

    def issue(self, user_id: uuid.UUID, roles: Iterable[str] = ("user",)) -> str:
        return self._issuer.issue(str(user_id), list(roles)).token

    def expired(self, user_id: uuid.UUID, roles: Iterable[str] = ("user",)) -> str:
        an_hour_ago = datetime.now(UTC) - timedelta(hours=1)
        issuer = TokenIssuer(
            self.key,
            issuer=ISSUER,
            audience=AUDIENCE,
            ttl=timedelta(minutes=15),
            clock=lambda: an_hour_ago,
        )
        return issuer.issue(str(user_id), list(roles)).token

    def foreign(self, user_id: uuid.UUID, roles: Iterable[str] = ("user",)) -> str:
        """Signed with the right key, but by another issuer."""
        issuer = TokenIssuer(
            self.key, issuer="https://elsewhere.example", audience=AUDIENCE, ttl=timedelta(hours=1)
        )
        return issuer.issue(str(user_id), list(roles)).token

    def headers(self, user_id: uuid.UUID, roles: Iterable[str] = ("user",)) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.issue(user_id, roles)}"}


@pytest.fixture(scope="session")
def tokens() -> Tokens:
    return Tokens()


class RolesTable(InMemoryRolesClient):
    """The auth service's roles, in memory, counting look-ups; `down` makes it unreachable."""

    def __init__(self) -> None:
        super().__init__()
        self.down = False
        self.lookups = 0

    async def roles(self, user_id: uuid.UUID) -> frozenset[str] | None:
        self.lookups += 1
        if self.down:
            raise DependencyUnavailableError(
                "The auth service cannot be reached to confirm the admin role."
            )
        return await super().roles(user_id)

    async def reachable(self) -> bool:
        return not self.down


def user_settings(database_url: str, **overrides: Any) -> Settings:
    return Settings(environment="local", database_url=database_url, **overrides)


@dataclass
class UserService:
    """The running service, an HTTP client on it, and shortcuts for what tests do often."""

    http: httpx.AsyncClient
    adapters: Adapters
    broker: InMemoryBroker
    queue: str
    tokens: Tokens
    roles: RolesTable
    admin_id: uuid.UUID = field(default_factory=uuid.uuid4)

    @property
    def store(self) -> SqlUserStore:
        return self.adapters.store

    async def deliver(self, *items: Event, seconds: float = 20.0) -> None:
        """Put the events on the service's queue and wait until it has handled them all."""
        for item in items:
            self.broker.send(self.queue, encode(item))
        await self.drained(seconds)

    async def drained(self, seconds: float = 20.0) -> None:
        deadline = asyncio.get_running_loop().time() + seconds
        while self.broker.depth(self.queue):
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"{self.broker.depth(self.queue)} events still queued")
            await asyncio.sleep(0.005)

    async def register(
        self, user_id: uuid.UUID | None = None, email: str | None = None
    ) -> uuid.UUID:
        """A user whose `user.created` has been consumed, and whom the auth service knows."""
        user_id = user_id or uuid.uuid4()
        self.roles.set(user_id, ["user"])
        await self.deliver(
            factories.user_created(user_id, email=email or f"u{user_id.hex[:10]}@example.com")
        )
        return user_id

    async def deactivate(self, user_id: uuid.UUID, sequence: int = 2) -> None:
        await self.deliver(factories.user_deactivated(user_id, sequence=sequence))

    def owner(self, user_id: uuid.UUID) -> dict[str, str]:
        return self.tokens.headers(user_id)

    def admin(self) -> dict[str, str]:
        return self.tokens.headers(self.admin_id, ADMIN_ROLES)

    async def add_address(self, user_id: uuid.UUID, **fields: Any) -> dict[str, Any]:
        body = {**HOME, **fields}
        response = await self.http.post(
            f"/api/v1/users/{user_id}/addresses", json=body, headers=self.owner(user_id)
        )
        assert response.status_code == 201, response.text
        created: dict[str, Any] = response.json()
        return created


HOME: Mapping[str, Any] = {
    "label": "Home",
    "line1": "12 St James's Square",
    "city": "London",
    "postalCode": "SW1Y 4JH",
    "country": "GB",
}


@asynccontextmanager
async def running(
    settings: Settings,
    adapters: Adapters,
) -> AsyncIterator[httpx.AsyncClient]:
    """The app with its lifespan run (migrations, consumer), and a client on it."""
    app = create_app(settings, adapters=adapters)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://user.test") as http:
            yield http


@pytest.fixture
async def service(
    database_url: str, tokens: Tokens, unique_prefix: str
) -> AsyncIterator[UserService]:
    broker = InMemoryBroker()
    queue = unique_prefix + "accord-user-service"
    broker.create_queue(QueueSpec(queue))
    roles = RolesTable()
    settings = user_settings(database_url, queue=queue)
    adapters = Adapters(
        store=SqlUserStore(database_url),
        verifier=tokens.verifier(),
        roles=roles,
        consumer=InMemoryEventConsumer(broker, queue, FAST),
    )
    async with running(settings, adapters) as http:
        user_service = UserService(http, adapters, broker, queue, tokens, roles)
        roles.set(user_service.admin_id, ADMIN_ROLES)
        yield user_service
