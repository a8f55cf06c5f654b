"""Admin rights end with the account, on every service of a running platform: the auth
service reads them from its database at each request, and the user and notification services
confirm them with the auth service, which refuses a deactivated account."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import pytest

from services.auth.grants import grant_role
from tests.e2e.support import StartStack

pytestmark = pytest.mark.emulator

PASSWORD = "correct-horse-battery-staple"


async def admin_operations(
    stack: Any, http: httpx.AsyncClient, token: str, other: str, spare: str
) -> list[int]:
    """The status of every admin operation of every service, called with `token` on the user
    `other` (and deactivating the user `spare`)."""
    auth, users = stack.config.url("auth"), stack.config.url("user")
    notifications = stack.config.url("notification")
    bearer = {"authorization": f"Bearer {token}"}
    calls = [
        http.get(f"{auth}/api/v1/auth/users/{other}/roles", headers=bearer),
        http.put(
            f"{auth}/api/v1/auth/users/{other}/roles",
            headers=bearer,
            json={"roles": ["user", "admin"]},
        ),
        http.post(f"{auth}/api/v1/auth/users/{spare}/deactivate", headers=bearer),
        http.get(f"{users}/api/v1/users", headers=bearer),
        http.get(f"{users}/api/v1/users/{other}", headers=bearer),
        http.get(f"{users}/api/v1/users/{other}/addresses", headers=bearer),
        http.get(f"{notifications}/api/v1/notifications", headers=bearer),
    ]
    return [(await call).status_code for call in calls]


async def test_a_deactivated_admins_token_is_refused_by_every_admin_operation_of_every_service(
    start_stack: StartStack,
) -> None:
    stack = await start_stack()
    auth = stack.config.url("auth")
    admin_email = f"admin-{uuid.uuid4().hex[:6]}@example.com"
    async with httpx.AsyncClient(timeout=10) as http:
        registered = await http.post(
            f"{auth}/api/v1/auth/register", json={"email": admin_email, "password": PASSWORD}
        )
        other_id, spare, later = [
            (
                await http.post(
                    f"{auth}/api/v1/auth/register",
                    json={"email": f"u-{uuid.uuid4().hex[:8]}@example.com", "password": PASSWORD},
                )
            ).json()["userId"]
            for _ in range(3)
        ]
        await grant_role(stack.env["AUTH_DATABASE_URL"], admin_email, "admin")
        login = await http.post(
            f"{auth}/api/v1/auth/login", json={"email": admin_email, "password": PASSWORD}
        )
        token = login.json()["accessToken"]
        # The profile exists once user.created has been consumed; until then the read is 404.
        users = stack.config.url("user")
        for _ in range(150):
            profile = await http.get(
                f"{users}/api/v1/users/{other_id}", headers={"authorization": f"Bearer {token}"}
            )
            if profile.status_code == 200:
                break
            await asyncio.sleep(0.2)
        before = await admin_operations(stack, http, token, other_id, spare)
        # The admin now deactivates themselves, with the token that carries the `admin` claim.
        gone = await http.post(
            f"{auth}/api/v1/auth/users/{registered.json()['userId']}/deactivate",
            headers={"authorization": f"Bearer {token}"},
        )
        # The other services drop their cached roles when user.deactivated arrives.
        after: list[int] = []
        for _ in range(150):
            after = await admin_operations(stack, http, token, other_id, later)
            if all(status in (401, 403) for status in after):
                break
            await asyncio.sleep(0.2)

    assert before == [200, 200, 204, 200, 200, 200, 200]
    assert gone.status_code == 204
    assert after[:3] == [401, 401, 401]
    assert after[3:] == [403, 403, 403, 403]
