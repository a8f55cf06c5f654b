"""The gateway over the real auth and user services, all three in one process (SQLite, an
in-memory bus between auth and user): a new user's overview is pending until the user service
has consumed `user.created`, then complete; with the user service unreachable it is partial,
and with the auth service unreachable it is 503."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from generated.auth.client import AuthServiceClient
from generated.gateway import models as api
from generated.user.client import UserServiceClient
from services.auth.app import build_adapters as build_auth_adapters
from services.auth.app import create_app as create_auth_app
from services.auth.settings import Settings as AuthSettings
from services.gateway.app import Adapters, create_app
from services.gateway.settings import Settings
from services.kit.auth_client import AuthClient
from services.kit.bus import EventPublisher
from services.kit.consumer import Backoff, ConsumerOptions
from services.kit.events import Event, Message
from services.kit.memory import InMemoryBroker, InMemoryEventConsumer, InMemoryEventPublisher
from services.kit.security import ConfirmedRoles, ContractAuthenticator
from services.kit.tokens import JwksKeySource, TokenVerifier
from services.kit.topology import QueueSpec, SubscriptionSpec, TopicSpec, Topology
from services.user.app import Adapters as UserAdapters
from services.user.app import create_app as create_user_app
from services.user.roles import AuthServiceRoles
from services.user.settings import Settings as UserSettings
from services.user.storage import SqlUserStore
from tests.gateway.conftest import GENEROUS

SERVICE_KEY = "a-service-key-long-enough-to-pass"
PASSWORD = "correct-horse-battery-staple"
CONSUMER = ConsumerOptions(max_in_flight=10, wait_seconds=0.05, backoff=Backoff(base=0))


class HeldPublisher:
    """The auth service's bus, which refuses every event while `held` (the outbox keeps them
    and tries again), so that a test can keep `user.created` in flight."""

    def __init__(self, inner: EventPublisher) -> None:
        self.inner = inner
        self.held = False

    async def publish(self, event: Event) -> None:
        self._refuse_while_held()
        await self.inner.publish(event)

    async def publish_message(self, message: Message) -> None:
        self._refuse_while_held()
        await self.inner.publish_message(message)

    def _refuse_while_held(self) -> None:
        if self.held:
            raise ConnectionError("the bus is held by the test")


class Switch(httpx.AsyncBaseTransport):
    """A transport to an app that can be cut off (`down`): every request is then refused."""

    def __init__(self, app: FastAPI) -> None:
        self.inner = httpx.ASGITransport(app=app)
        self.down = False

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self.down:
            raise httpx.ConnectError("connection refused", request=request)
        return await self.inner.handle_async_request(request)


@dataclass
class Stack:
    auth: httpx.AsyncClient
    user: httpx.AsyncClient
    gateway: httpx.AsyncClient
    bus: HeldPublisher
    auth_line: Switch
    user_line: Switch

    async def register(self) -> dict[str, Any]:
        email = f"user-{uuid.uuid4().hex[:12]}@example.com"
        answer = await self.auth.post(
            "/api/v1/auth/register", json={"email": email, "password": PASSWORD}
        )
        assert answer.status_code == 201, answer.text
        return {**answer.json(), "email": email}

    async def my_overview(self, tokens: dict[str, Any]) -> api.Overview:
        answer = await self.gateway.get("/api/v1/me", headers=bearer(tokens))
        assert answer.status_code == 200, answer.text
        return api.Overview.model_validate(answer.json())


def bearer(tokens: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {tokens['accessToken']}"}


async def served(stack: AsyncExitStack, app: FastAPI, base_url: str) -> httpx.AsyncClient:
    await stack.enter_async_context(app.router.lifespan_context(app))
    transport = httpx.ASGITransport(app=app)
    return await stack.enter_async_context(
        httpx.AsyncClient(transport=transport, base_url=base_url)
    )


@pytest.fixture
async def stack(tmp_path: Path, unique_prefix: str) -> AsyncIterator[Stack]:
    broker = InMemoryBroker()
    topic, queue = unique_prefix + "user-events", unique_prefix + "user-service"
    broker.apply(
        Topology(
            topics=(TopicSpec(topic),),
            queues=(QueueSpec(queue),),
            subscriptions=(SubscriptionSpec(topic, queue),),
        )
    )
    auth_settings = AuthSettings(
        environment="local",
        database_url=f"sqlite:///{tmp_path / 'auth.db'}",
        signing_key_path=tmp_path / "signing-key.pem",
        service_api_key=SERVICE_KEY,
        argon2_time_cost=1,
        argon2_memory_cost_kib=1024,
        argon2_parallelism=1,
        outbox_poll_seconds=0.1,
        outbox_backoff_base_seconds=0.05,
        outbox_backoff_cap_seconds=0.1,
    )
    bus = HeldPublisher(InMemoryEventPublisher(broker, topic))
    auth_app = create_auth_app(
        auth_settings, adapters=replace(build_auth_adapters(auth_settings), publisher=bus)
    )
    async with AsyncExitStack() as running:
        auth = await served(running, auth_app, "http://auth")

        def auth_client(**options: Any) -> AuthClient:
            return AuthClient.over(auth, **options)

        def verifier() -> TokenVerifier:
            keys = JwksKeySource(auth_client().jwks, min_refetch_interval=timedelta())
            return TokenVerifier(keys, issuer=auth_settings.issuer, audience="accord")

        user_database = f"sqlite:///{tmp_path / 'user.db'}"
        user_app = create_user_app(
            UserSettings(environment="local", database_url=user_database, queue=queue),
            adapters=UserAdapters(
                store=SqlUserStore(user_database),
                verifier=verifier(),
                roles=AuthServiceRoles(auth_client(service_api_key=SERVICE_KEY)),
                consumer=InMemoryEventConsumer(broker, queue, CONSUMER),
            ),
        )
        user = await served(running, user_app, "http://user")

        auth_line, user_line = Switch(auth_app), Switch(user_app)
        gateway_auth = await running.enter_async_context(
            httpx.AsyncClient(transport=auth_line, base_url="http://auth")
        )
        gateway_user = await running.enter_async_context(
            httpx.AsyncClient(transport=user_line, base_url="http://user")
        )
        confirming = AuthClient.over(gateway_auth, service_api_key=SERVICE_KEY)
        keys = JwksKeySource(AuthClient.over(gateway_auth).jwks)
        adapters = Adapters(
            authenticator=ContractAuthenticator(
                TokenVerifier(keys, issuer=auth_settings.issuer, audience="accord"),
                ConfirmedRoles(confirming.roles),
            ),
            auth=AuthServiceClient(gateway_auth),
            user=UserServiceClient(gateway_user),
            auth_reachable=confirming.reachable,
        )
        gateway = await served(
            running, create_app(Settings(**GENEROUS), adapters=adapters), "http://gateway"
        )
        yield Stack(auth, user, gateway, bus, auth_line, user_line)


async def test_a_new_users_overview_is_pending_until_the_profile_is_created_then_complete(
    stack: Stack,
) -> None:
    stack.bus.held = True  # `user.created` stays in the outbox
    ada = await stack.register()

    pending = await stack.my_overview(ada)
    stack.bus.held = False
    for _ in range(200):
        complete = await stack.my_overview(ada)
        if complete.profileStatus is not api.ProfileAvailability.pending:
            break
        await asyncio.sleep(0.05)
    added = await stack.user.post(
        f"/api/v1/users/{ada['userId']}/addresses",
        json={
            "label": "Home",
            "line1": "1 Main St",
            "city": "London",
            "postalCode": "SW1Y 4JH",
            "country": "GB",
        },
        headers=bearer(ada),
    )
    with_address = await stack.my_overview(ada)

    assert pending.profileStatus is api.ProfileAvailability.pending
    assert (pending.profile, pending.addresses, pending.partial) == (None, [], False)
    assert str(pending.account.id) == ada["userId"]
    assert complete.profileStatus is api.ProfileAvailability.available
    assert complete.profile is not None
    assert complete.profile.email == ada["email"]
    assert (complete.addresses, complete.partial) == ([], False)
    assert added.status_code == 201, added.text
    assert with_address.addresses is not None
    assert [address.line1 for address in with_address.addresses] == ["1 Main St"]


async def test_without_the_user_service_the_overview_is_partial_and_without_auth_it_is_503(
    stack: Stack,
) -> None:
    ada = await stack.register()
    await stack.my_overview(ada)  # the gateway has the auth service's keys from now on

    stack.user_line.down = True
    partial = await stack.my_overview(ada)
    stack.auth_line.down = True
    unavailable = await stack.gateway.get("/api/v1/me", headers=bearer(ada))
    not_ready = await stack.gateway.get("/health/ready")

    assert partial.partial is True
    assert {problem.part for problem in partial.problems} == {
        api.Part.profile,
        api.Part.addresses,
    }
    assert str(partial.account.id) == ada["userId"]
    assert unavailable.status_code == 503
    assert unavailable.headers["Retry-After"] == "5"
    assert not_ready.status_code == 503
