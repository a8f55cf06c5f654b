"""The user service as the provider the pacts hold it to: the real app from `create_app`, on its
real store (a SQLite file), with the events it consumes on an in-memory queue, access tokens
verified with a key of the test's own, and roles from an in-memory table (the auth service's
part, which its own pacts cover).

Its event loop runs in a background thread (a blocking portal), because the Pact core calls
back from threads of its own: a provider state is set up the way it comes about, a profile by
delivering `user.created` to the service's consumer and an address through the HTTP API; a
pending profile is a user the roles table knows whose `user.created` has not arrived."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, Final

import httpx
from anyio.from_thread import BlockingPortal
from fastapi import FastAPI
from pact import Verifier

from services.kit.consumer import Backoff, ConsumerOptions
from services.kit.events import encode
from services.kit.memory import InMemoryBroker, InMemoryEventConsumer
from services.kit.tokens import SigningKey, StaticKeySource, TokenIssuer, TokenVerifier, jwks
from services.kit.topology import QueueSpec
from services.user.app import Adapters, create_app
from services.user.roles import InMemoryRolesClient
from services.user.settings import Settings
from services.user.storage import SqlUserStore
from tests import factories
from tests.contract.pact import examples
from tests.contract.pact.support import HOST, USER_SERVICE, eventually

QUEUE: Final = "pact-user-service"
ISSUER: Final = "http://auth.pact.test"
AUDIENCE: Final = "accord"
ADMIN_ROLES: Final = ["user", "admin"]
HOME: Final = {
    "label": "Home",
    "line1": "12 St James's Square",
    "line2": "Flat 3",
    "city": "London",
    "region": "Greater London",
    "postalCode": "SW1Y 4JH",
    "country": "GB",
}
NAMES: Final = {
    "displayName": "Ada Lovelace",
    "firstName": "Ada",
    "lastName": "Lovelace",
    "phone": "+447700900123",
}


@dataclass
class UserService:
    """The running user service (lifespan entered), an in-process client on it, its queue,
    its roles table and the key its tokens are signed with."""

    app: FastAPI
    http: httpx.AsyncClient
    broker: InMemoryBroker
    roles: InMemoryRolesClient
    key: SigningKey
    admin_id: uuid.UUID

    def token(self, user_id: uuid.UUID, roles: list[str]) -> str:
        issuer = TokenIssuer(self.key, issuer=ISSUER, audience=AUDIENCE, ttl=timedelta(minutes=15))
        return issuer.issue(str(user_id), roles).token

    @property
    def admin(self) -> dict[str, str]:
        """The `Authorization` of an admin, as the verifier sends it with every request."""
        return {"Authorization": f"Bearer {self.token(self.admin_id, ADMIN_ROLES)}"}

    # --- provider states ------------------------------------------------------------------

    async def a_profile_with_an_address(self, user_id: uuid.UUID) -> None:
        """The user's profile made from `user.created`, filled in, with one address."""
        self.roles.set(user_id, ["user"])
        profile = f"/api/v1/users/{user_id}"
        if (await self.http.get(profile, headers=self.admin)).status_code == 200:
            return  # set up for an earlier interaction of the same state
        self.broker.send(QUEUE, encode(factories.user_created(user_id, email=examples.EMAIL)))
        await eventually(lambda: self.broker.depth(QUEUE) == 0, "user.created consumed")
        named = await self.http.patch(profile, json=NAMES, headers=self.admin)
        assert named.status_code == 200, named.text
        added = await self.http.post(f"{profile}/addresses", json=HOME, headers=self.admin)
        assert added.status_code == 201, added.text

    async def a_pending_profile(self, user_id: uuid.UUID) -> None:
        """A user the auth service knows (the roles table) whose `user.created` has not been
        consumed."""
        self.roles.set(user_id, ["user"])
        answer = await self.http.get(f"/api/v1/users/{user_id}", headers=self.admin)
        assert answer.status_code == 404, answer.text


@asynccontextmanager
async def running(directory: Path) -> AsyncIterator[UserService]:
    """The user service started (migrations, consumer) on a database in `directory`."""
    database_url = f"sqlite:///{directory / 'user.db'}"
    key, admin_id = SigningKey.generate(), uuid.uuid4()
    broker = InMemoryBroker()
    broker.create_queue(QueueSpec(QUEUE))
    roles = InMemoryRolesClient({admin_id: ADMIN_ROLES})
    adapters = Adapters(
        store=SqlUserStore(database_url),
        verifier=TokenVerifier(StaticKeySource(jwks(key)), issuer=ISSUER, audience=AUDIENCE),
        roles=roles,
        consumer=InMemoryEventConsumer(
            broker,
            QUEUE,
            ConsumerOptions(max_in_flight=10, wait_seconds=0.05, backoff=Backoff(base=0)),
        ),
    )
    settings = Settings(environment="local", database_url=database_url, queue=QUEUE, issuer=ISSUER)
    app = create_app(settings, adapters=adapters)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://user.pact.test"
        ) as http,
    ):
        yield UserService(app, http, broker, roles, key, admin_id)


def _user_id(parameters: Mapping[str, Any] | None) -> uuid.UUID:
    if not parameters or "userId" not in parameters:
        raise ValueError("the provider state names no userId")
    return uuid.UUID(str(parameters["userId"]))


def http_verifier(service: UserService, portal: BlockingPortal, url: str) -> Verifier:
    """A verifier replaying requests against `url` as an admin, setting each provider state up
    in the running service."""

    def a_profile_with_an_address(parameters: dict[str, Any] | None = None) -> None:
        portal.call(service.a_profile_with_an_address, _user_id(parameters))

    def a_pending_profile(parameters: dict[str, Any] | None = None) -> None:
        portal.call(service.a_pending_profile, _user_id(parameters))

    return (
        Verifier(USER_SERVICE, host=HOST)
        .add_transport(url=url)
        .state_handler(
            {
                examples.PROFILE_WITH_ADDRESS: a_profile_with_an_address,
                examples.PROFILE_PENDING: a_pending_profile,
            },
            teardown=False,
        )
        # The pacts hold an example token; a consumer forwards its caller's, here an admin's.
        .add_custom_header("Authorization", service.admin["Authorization"])
        .set_coloured_output(enabled=False)
    )
