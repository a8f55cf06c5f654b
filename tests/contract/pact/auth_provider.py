"""The auth service as the provider the pacts hold it to: the real app from `create_app`, on
its real adapters (a SQLite file, Argon2id with cheap parameters) and an in-memory topic.

Its event loop runs in a background thread (a blocking portal), because the Pact core calls
back from threads of its own: provider states set data up through the app's own store, the
way registration and `accord roles grant` do; a message is what the outbox relay publishes
after the real operation (a registration, a reset request, ...) ran through the HTTP API."""

from __future__ import annotations

import json
import secrets
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from datetime import timedelta
from pathlib import Path
from typing import Any, Final

import httpx
from anyio.from_thread import BlockingPortal
from fastapi import FastAPI
from pact import Verifier
from pact.types import Message as PactMessage
from pydantic import SecretStr

from services.auth.app import Adapters, build_adapters, create_app
from services.auth.domain import ADMIN, USER, Account, AccountStatus, UserCreated
from services.auth.grants import grant_role
from services.auth.settings import Settings
from services.kit.events import Message
from services.kit.memory import InMemoryBroker, InMemoryEventPublisher
from services.kit.tokens import TokenIssuer
from services.kit.topology import QueueSpec, SubscriptionSpec, TopicSpec, Topology
from tests.contract.pact import examples
from tests.contract.pact.support import AUTH_SERVICE, HOST, USER_EVENTS_TOPIC, eventually

PREFIX: Final = "/api/v1/auth"
PASSWORD: Final = "correct-horse-battery-staple"
# Every event the relay publishes lands here (no filter policy), for the producers to pick.
EVERYTHING: Final = "pact-everything"


def auth_settings(directory: Path) -> Settings:
    """Local-mode settings with a real service API key, cheap Argon2 and generous limits."""
    return Settings(
        environment="local",
        database_url=f"sqlite:///{directory / 'auth.db'}",
        signing_key_path=directory / "signing-key.pem",
        service_api_key=SecretStr(secrets.token_urlsafe(24)),
        argon2_time_cost=1,
        argon2_memory_cost_kib=1024,
        argon2_parallelism=1,
        registrations_per_address=1000,
        reset_requests_per_email=1000,
        reset_requests_per_address=1000,
        verification_requests_per_account=1000,
        outbox_poll_seconds=0.5,
    )


@dataclass(frozen=True)
class Registered:
    """A user registered through the API, with the access token registration answered."""

    user_id: uuid.UUID
    email: str
    access_token: str

    @property
    def bearer(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_token}"}


@dataclass
class AuthService:
    """The running auth service (lifespan entered), an in-process client on it, and its bus."""

    settings: Settings
    adapters: Adapters
    app: FastAPI
    http: httpx.AsyncClient
    broker: InMemoryBroker
    published: list[Message] = field(default_factory=list)

    # --- provider states ------------------------------------------------------------------

    async def an_admin_exists(self, user_id: uuid.UUID) -> None:
        """An account with this id, registered and then made an admin by `accord roles grant`."""
        email = await self.a_user_exists(user_id, f"admin-{user_id.hex[:12]}@example.com")
        await grant_role(self.settings.database_url, email, ADMIN)

    async def a_user_exists(self, user_id: uuid.UUID, email: str | None = None) -> str:
        """An account with this id, as registration commits it; its email."""
        email = email or f"user-{user_id.hex[:12]}@example.com"
        async with self.adapters.store.unit_of_work() as uow:
            existing = await uow.accounts.get(user_id)
            if existing is not None:  # set up for an earlier interaction
                return existing.email
            # What registration commits, with the id the pact names.
            await uow.accounts.add(
                Account(
                    id=user_id,
                    email=email,
                    password_hash=await self.adapters.passwords.hash(PASSWORD),
                    email_verified=False,
                    roles=frozenset({USER}),
                    status=AccountStatus.ACTIVE,
                    created_at=self.adapters.clock(),
                )
            )
            await uow.record(UserCreated(user_id, email))
            await uow.commit()
        return email

    def access_token(self, user_id: uuid.UUID) -> str:
        """An access token for `user_id`, as login issues it (signed with the current key)."""
        issuer = TokenIssuer(
            self.adapters.signing_key,
            issuer=self.settings.issuer,
            audience=self.settings.audience,
            ttl=timedelta(minutes=5),
        )
        return issuer.issue(str(user_id), [USER, ADMIN]).token

    async def no_user_has(self, user_id: uuid.UUID) -> None:
        async with self.adapters.store.unit_of_work() as uow:
            if await uow.accounts.get(user_id) is not None:
                raise AssertionError(f"the state needs no account {user_id}, and there is one")

    # --- messages -------------------------------------------------------------------------

    async def register(self) -> Registered:
        email = f"ada-{uuid.uuid4().hex[:12]}@example.com"
        response = await self.http.post(
            f"{PREFIX}/register", json={"email": email, "password": PASSWORD}
        )
        assert response.status_code == 201, response.text
        tokens = response.json()
        return Registered(uuid.UUID(tokens["userId"]), email, tokens["accessToken"])

    async def published_event(self, event_type: str, user_id: uuid.UUID) -> Message:
        """The `event_type` event about the user, once the outbox relay has published it."""

        def find() -> Message | None:
            while batch := self.broker.receive_now(EVERYTHING, 10):
                self.published.extend(item.message for item in batch)
                self.broker.delete(EVERYTHING, [item.receipt for item in batch])
            return next(
                (
                    message
                    for message in self.published
                    if message.event_type == event_type
                    and json.loads(message.body).get("userId") == str(user_id)
                ),
                None,
            )

        await eventually(lambda: find() is not None, f"the relay publishing {event_type}")
        found = find()
        assert found is not None
        return found

    async def produce(self, description: str) -> Message:
        """Run the operation that announces the message `description` names; the message."""
        event_type, operation = OPERATIONS[description]
        user = await self.register()
        await operation(self, user)
        return await self.published_event(event_type, user.user_id)


async def _registration(service: AuthService, user: Registered) -> None:
    return None  # registering the user was the operation


async def _email_verification_request(service: AuthService, user: Registered) -> None:
    response = await service.http.post(f"{PREFIX}/email-verification", headers=user.bearer)
    assert response.status_code == 202, response.text


async def _password_reset_request(service: AuthService, user: Registered) -> None:
    response = await service.http.post(f"{PREFIX}/password-reset", json={"email": user.email})
    assert response.status_code == 202, response.text


async def _deactivation(service: AuthService, user: Registered) -> None:
    response = await service.http.post(
        f"{PREFIX}/users/{user.user_id}/deactivate", headers=user.bearer
    )
    assert response.status_code == 204, response.text


Operation = Callable[[AuthService, Registered], Awaitable[None]]

# The message each description names: the event type, and the operation that causes it.
OPERATIONS: Final[Mapping[str, tuple[str, Operation]]] = {
    "a user.created event": ("user.created", _registration),
    "a user.email.verification.requested event": (
        "user.email.verification.requested",
        _email_verification_request,
    ),
    "a user.password.reset.requested event": (
        "user.password.reset.requested",
        _password_reset_request,
    ),
    "a user.deactivated event": ("user.deactivated", _deactivation),
}


@asynccontextmanager
async def running(directory: Path) -> AsyncIterator[AuthService]:
    """The auth service started (migrations, outbox relay) on a database in `directory`."""
    settings = auth_settings(directory)
    broker = InMemoryBroker()
    broker.apply(
        Topology(
            topics=(TopicSpec(USER_EVENTS_TOPIC),),
            queues=(QueueSpec(EVERYTHING),),
            subscriptions=(SubscriptionSpec(USER_EVENTS_TOPIC, EVERYTHING),),
        )
    )
    adapters = replace(
        build_adapters(settings), publisher=InMemoryEventPublisher(broker, USER_EVENTS_TOPIC)
    )
    app = create_app(settings, adapters=adapters)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://auth.pact.test"
        ) as http,
    ):
        yield AuthService(settings, adapters, app, http, broker)


# --- what the verifier calls ------------------------------------------------------------------


def _user_id(parameters: Mapping[str, Any] | None) -> uuid.UUID:
    if not parameters or "userId" not in parameters:
        raise ValueError("the provider state names no userId")
    return uuid.UUID(str(parameters["userId"]))


def http_verifier(service: AuthService, portal: BlockingPortal, url: str) -> Verifier:
    """A verifier replaying requests against `url`, setting each provider state up in the
    service's own store."""

    def an_admin_exists(parameters: dict[str, Any] | None = None) -> None:
        portal.call(service.an_admin_exists, _user_id(parameters))

    def no_user_has_the_id(parameters: dict[str, Any] | None = None) -> None:
        portal.call(service.no_user_has, _user_id(parameters))

    def a_user_exists(parameters: dict[str, Any] | None = None) -> None:
        portal.call(service.a_user_exists, _user_id(parameters))

    return (
        Verifier(AUTH_SERVICE, host=HOST)
        .add_transport(url=url)
        .state_handler(
            {
                examples.ADMIN_EXISTS: an_admin_exists,
                examples.NO_SUCH_USER: no_user_has_the_id,
                examples.USER_EXISTS: a_user_exists,
            },
            teardown=False,
        )
        # The pact holds an example key; the deployed services share the configured one.
        .add_custom_header("X-API-Key", service.settings.service_api_key.get_secret_value())
        # A consumer that forwards its caller's token (the gateway) holds an example one; the
        # caller here is the admin of the pacts' examples (`ADMIN_EXISTS`).
        .add_custom_header(
            "Authorization", f"Bearer {service.access_token(uuid.UUID(examples.USER_ID))}"
        )
        .set_coloured_output(enabled=False)
    )


def message_verifier(
    service: AuthService,
    portal: BlockingPortal,
    alter: Callable[[Message], Message] = lambda message: message,
) -> Verifier:
    """A verifier asking the service for each message (`alter` changes it on the way: a
    broken provider)."""

    def producer(description: str) -> Callable[[], PactMessage]:
        def produce() -> PactMessage:
            message = alter(portal.call(service.produce, description))
            return PactMessage(
                contents=message.body.encode("utf-8"),
                metadata=dict(message.attributes),
                content_type="application/json",
            )

        return produce

    return (
        Verifier(AUTH_SERVICE, host=HOST)
        .message_handler({description: producer(description) for description in OPERATIONS})
        .set_coloured_output(enabled=False)
    )
