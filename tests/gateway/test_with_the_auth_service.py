"""The gateway in front of the real auth service (in process, on SQLite): its tokens verified
with the keys the auth service publishes, an admin confirmed with `getUserRoles`, and the account
read with `getCurrentAccount` and `getAccount`; the user service is scripted."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from generated.auth.client import AuthServiceClient
from generated.gateway import models as api
from generated.user.client import UserServiceClient
from services.auth.app import create_app as create_auth_app
from services.auth.grants import grant_role
from services.auth.settings import Settings as AuthSettings
from services.gateway.app import Adapters, create_app
from services.gateway.settings import Settings
from services.kit.auth_client import AuthClient
from services.kit.security import ConfirmedRoles, ContractAuthenticator
from services.kit.tokens import JwksKeySource, TokenVerifier
from tests.gateway.conftest import GENEROUS, Downstream, addresses, failing, ok, profile

SERVICE_KEY = "a-service-key-long-enough-to-pass"
PASSWORD = "correct-horse-battery-staple"


@dataclass
class Stack:
    auth: httpx.AsyncClient
    gateway: httpx.AsyncClient
    user: Downstream
    database_url: str

    async def register(self) -> dict[str, Any]:
        email = f"user-{uuid.uuid4().hex[:12]}@example.com"
        response = await self.auth.post(
            "/api/v1/auth/register", json={"email": email, "password": PASSWORD}
        )
        assert response.status_code == 201, response.text
        return {**response.json(), "email": email}

    async def admin(self) -> dict[str, Any]:
        user = await self.register()
        await grant_role(self.database_url, user["email"], "admin")
        response = await self.auth.post(
            "/api/v1/auth/login", json={"email": user["email"], "password": PASSWORD}
        )
        assert response.status_code == 200, response.text
        return {**user, **response.json()}


def bearer(tokens: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {tokens['accessToken']}"}


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[Stack]:
    auth_settings = AuthSettings(
        environment="local",
        database_url=f"sqlite:///{tmp_path / 'auth.db'}",
        signing_key_path=tmp_path / "signing-key.pem",
        service_api_key=SERVICE_KEY,
        argon2_time_cost=1,
        argon2_memory_cost_kib=1024,
        argon2_parallelism=1,
    )
    auth_app = create_auth_app(auth_settings)
    user = Downstream("the user service")
    async with auth_app.router.lifespan_context(auth_app):
        auth_transport = httpx.ASGITransport(app=auth_app)
        async with (
            httpx.AsyncClient(transport=auth_transport, base_url="http://auth") as auth_http,
            httpx.AsyncClient(
                transport=httpx.MockTransport(user), base_url="http://user"
            ) as user_http,
        ):
            keys = JwksKeySource(AuthClient.over(auth_http).jwks, min_refetch_interval=timedelta())
            roles = AuthClient.over(auth_http, service_api_key=SERVICE_KEY)
            adapters = Adapters(
                authenticator=ContractAuthenticator(
                    TokenVerifier(keys, issuer=auth_settings.issuer, audience="accord"),
                    ConfirmedRoles(roles.roles),
                ),
                auth=AuthServiceClient(auth_http),
                user=UserServiceClient(user_http),
                auth_reachable=roles.reachable,
            )
            app = create_app(Settings(**GENEROUS), adapters=adapters)
            async with app.router.lifespan_context(app):
                gateway_transport = httpx.ASGITransport(app=app)
                async with httpx.AsyncClient(
                    transport=gateway_transport, base_url="http://gateway"
                ) as gateway:
                    yield Stack(auth_http, gateway, user, auth_settings.database_url)


async def test_a_user_just_registered_sees_their_account_and_a_pending_profile(
    stack: Stack,
) -> None:
    ada = await stack.register()
    user_id = ada["userId"]
    stack.user.on(f"/api/v1/users/{user_id}", failing(404, "profile-pending", retry_after=1))
    stack.user.on(f"/api/v1/users/{user_id}/addresses", failing(404, "profile-pending"))

    response = await stack.gateway.get("/api/v1/me", headers=bearer(ada))

    assert response.status_code == 200, response.text
    overview = api.Overview.model_validate(response.json())
    assert str(overview.account.id) == user_id
    assert overview.account.email == ada["email"]
    assert overview.profileStatus is api.ProfileAvailability.pending
    assert (overview.addresses, overview.partial) == ([], False)


async def test_an_admin_sees_a_deactivated_users_overview_and_an_unknown_one_is_404(
    stack: Stack,
) -> None:
    admin, ada = await stack.admin(), await stack.register()
    user_id = uuid.UUID(ada["userId"])
    deactivated = await stack.auth.post(
        f"/api/v1/auth/users/{user_id}/deactivate", headers=bearer(admin)
    )
    assert deactivated.status_code == 204
    stack.user.on(f"/api/v1/users/{user_id}", ok(profile(user_id)))
    stack.user.on(f"/api/v1/users/{user_id}/addresses", ok(addresses(user_id)))

    response = await stack.gateway.get(f"/api/v1/users/{user_id}/overview", headers=bearer(admin))
    unknown = await stack.gateway.get(
        f"/api/v1/users/{uuid.uuid4()}/overview", headers=bearer(admin)
    )

    assert response.status_code == 200, response.text
    overview = api.Overview.model_validate(response.json())
    assert overview.account.status is api.AccountStatus.deactivated
    assert unknown.status_code == 404
    assert unknown.json()["type"].endswith("/not-found")


async def test_another_user_is_refused_before_any_call_and_the_gateway_is_ready(
    stack: Stack,
) -> None:
    ada, bob = await stack.register(), await stack.register()

    response = await stack.gateway.get(
        f"/api/v1/users/{bob['userId']}/overview", headers=bearer(ada)
    )
    ready = await stack.gateway.get("/health/ready")

    assert response.status_code == 403
    assert stack.user.requests == []
    assert ready.json() == {"status": "ok", "checks": {"authService": "ok"}}
