"""The whole platform as `accord up` runs it: a moto server over HTTP, the SMTP sink and the
three services on free ports, walked through the seed's flows."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

from harness.stack.up import Stack
from tests.conftest import REPOSITORY
from tests.e2e.support import StartStack

pytestmark = pytest.mark.emulator

PASSWORD = "correct-horse-battery-staple"


async def eventually(probe: Callable[[], Awaitable[Any]], seconds: float = 30.0) -> Any:
    """Poll until `probe` returns something truthy (a bound on waiting, not a speed claim)."""
    deadline = asyncio.get_running_loop().time() + seconds
    while True:
        result = await probe()
        if result:
            return result
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("the platform did not get there in time")
        await asyncio.sleep(0.2)


class Client:
    """The seed's flows, spoken over HTTP to a running stack."""

    def __init__(self, stack: Stack, http: httpx.AsyncClient) -> None:
        self.http = http
        self.auth = stack.config.url("auth")
        self.users = stack.config.url("user")
        self.mail = stack.config.url("mail")

    async def register(self, email: str) -> dict[str, Any]:
        response = await self.http.post(
            f"{self.auth}/api/v1/auth/register", json={"email": email, "password": PASSWORD}
        )
        assert response.status_code == 201, response.text
        tokens: dict[str, Any] = response.json()
        return tokens

    async def profile(self, user_id: str, token: str) -> httpx.Response:
        return await self.http.get(
            f"{self.users}/api/v1/users/{user_id}", headers={"authorization": f"Bearer {token}"}
        )

    async def link(self, email: str, kind: str) -> str | None:
        messages = (await self.http.get(f"{self.mail}/api/messages")).json()
        links = [
            link
            for message in messages
            if email in message["recipients"]
            for link in message["links"]
            if kind in link
        ]
        return links[-1] if links else None

    async def mail_count(self, email: str) -> int:
        messages = (await self.http.get(f"{self.mail}/api/messages")).json()
        return sum(email in message["recipients"] for message in messages)


def token_of(link: str) -> str:
    match = re.search(r"token=([^&\s]+)", link)
    assert match is not None, link
    return match.group(1)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def databases(request: pytest.FixtureRequest) -> dict[str, str]:
    """No overrides (SQLite under the state directory), or one PostgreSQL database each."""
    if request.param == "sqlite":
        return {}
    make: Callable[[], str] = request.getfixturevalue("new_postgres_database")
    return {name: make() for name in ("auth", "user", "notification")}


async def test_the_seed_flows_work_end_to_end(
    start_stack: StartStack, databases: dict[str, str]
) -> None:
    stack = await start_stack(database_urls=databases)
    email = f"ada-{uuid.uuid4().hex[:6]}@example.com"
    async with httpx.AsyncClient(timeout=10) as http:
        client = Client(stack, http)

        tokens = await client.register(email)
        user_id, access = tokens["userId"], tokens["accessToken"]
        profile = await eventually(lambda: _ok_json(client.profile(user_id, access)))
        assert profile["email"] == email
        assert profile["status"] == "active"

        bearer = {"authorization": f"Bearer {access}"}
        requested = await http.post(f"{client.auth}/api/v1/auth/email-verification", headers=bearer)
        assert requested.status_code == 202
        link = await eventually(lambda: client.link(email, "verify-email"))
        confirmed = await http.post(
            f"{client.auth}/api/v1/auth/email-verification/confirm", json={"token": token_of(link)}
        )
        assert confirmed.status_code == 204
        me = (await http.get(f"{client.auth}/api/v1/auth/me", headers=bearer)).json()
        assert me["emailVerified"] is True

        reset = await http.post(f"{client.auth}/api/v1/auth/password-reset", json={"email": email})
        assert reset.status_code == 202
        link = await eventually(lambda: client.link(email, "reset-password"))
        new_password = "an-entirely-new-passphrase"
        changed = await http.post(
            f"{client.auth}/api/v1/auth/password-reset/confirm",
            json={"token": token_of(link), "newPassword": new_password},
        )
        assert changed.status_code == 204
        old_refresh = await http.post(
            f"{client.auth}/api/v1/auth/refresh", json={"refreshToken": tokens["refreshToken"]}
        )
        assert old_refresh.status_code == 401

        login = await http.post(
            f"{client.auth}/api/v1/auth/login", json={"email": email, "password": new_password}
        )
        assert login.status_code == 200
        access = login.json()["accessToken"]
        deactivated = await http.post(
            f"{client.auth}/api/v1/auth/users/{user_id}/deactivate",
            headers={"authorization": f"Bearer {access}"},
        )
        assert deactivated.status_code == 204

        async def tombstone() -> dict[str, Any] | None:
            body = await _ok_json(client.profile(user_id, access))
            return body if body and body["status"] == "deactivated" else None

        profile = await eventually(tombstone)
        assert profile["email"] is None
        refused = await http.post(
            f"{client.auth}/api/v1/auth/login", json={"email": email, "password": new_password}
        )
        assert refused.status_code == 403
        assert await client.mail_count(email) == 2  # one verification, one reset: no duplicates


async def _ok_json(response: Awaitable[httpx.Response]) -> dict[str, Any] | None:
    result = await response
    if result.status_code != 200:
        return None
    body: dict[str, Any] = result.json()
    return body


async def test_profiles_registered_while_the_user_service_is_down_appear_when_it_is_back(
    start_stack: StartStack,
) -> None:
    stack = await start_stack(services=("auth", "notification"))
    async with httpx.AsyncClient(timeout=10) as http:
        client = Client(stack, http)
        registered = [
            await client.register(f"u{i}-{uuid.uuid4().hex[:6]}@example.com") for i in range(5)
        ]

        await stack.start_service("user")

        async def every_profile() -> list[dict[str, Any] | None] | None:
            found = [
                await _ok_json(client.profile(t["userId"], t["accessToken"])) for t in registered
            ]
            return found if all(found) else None

        profiles = await eventually(every_profile)
        assert [p["id"] for p in profiles] == [t["userId"] for t in registered]


async def test_an_email_requested_while_smtp_is_down_arrives_once_when_it_is_back(
    start_stack: StartStack,
) -> None:
    stack = await start_stack()
    assert stack.sink is not None
    async with httpx.AsyncClient(timeout=10) as http:
        client = Client(stack, http)
        email = f"grace-{uuid.uuid4().hex[:6]}@example.com"
        await client.register(email)

        stack.sink.stop()
        reset = await http.post(f"{client.auth}/api/v1/auth/password-reset", json={"email": email})
        assert reset.status_code == 202
        await asyncio.sleep(2)  # at least one delivery attempt fails meanwhile
        stack.sink.start()

        await eventually(lambda: client.link(email, "reset-password"))
        await asyncio.sleep(2)  # room for a duplicate to show up, if one were coming
        assert await client.mail_count(email) == 1


async def test_the_readme_walkthrough_runs_as_written(start_stack: StartStack) -> None:
    stack = await start_stack()
    readme = (REPOSITORY / "README.md").read_text()
    block = readme.split("<!-- walkthrough:start -->")[1].split("<!-- walkthrough:end -->")[0]
    script = block.strip().removeprefix("```sh").removesuffix("```")

    process = await asyncio.create_subprocess_exec(
        "bash",
        "-euo",
        "pipefail",
        "-c",
        script,
        env={
            "PATH": "/usr/bin:/bin:/usr/local/bin",
            "AUTH": stack.config.url("auth"),
            "USERS": stack.config.url("user"),
            "MAIL": stack.config.url("mail"),
            "GATEWAY": stack.config.url("gateway"),
        },
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), timeout=120)
    text = output.decode()

    assert process.returncode == 0, text
    assert "   401" in text  # the old refresh token is refused after the reset
    assert "login now answers 403" in text
    assert "profile status: deactivated" in text
    assert "the gateway's overview: profile available, addresses [], partial False" in text
