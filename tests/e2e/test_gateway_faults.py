"""The gateway's partial answers (`contracts/openapi/gateway-service.yaml`, "Partial answers"),
each branch made by a real failure of a real service served on its port: the user service
stopped (its process ended), stalled past the part deadline or answering 503, behind a
`FaultyProxy`; the auth service down or stalled behind another; a profile still pending because
the user service's consumer cannot reach its queue. Every answer is checked against the
contract's `Overview` or `Problem` schema; none is a 500.

The stack is `accord up`'s (moto, provisioning, SQLite), with no service started until the test
starts the ones it needs: auth and user in the test's process (or the user service in a process
of its own, to stop it), and the gateway pointed at them through the proxies
(`GATEWAY_USER_SERVICE_URL`, `GATEWAY_AUTH_SERVICE_URL`) with short deadlines
(`GATEWAY_PART_TIMEOUT_SECONDS`, `GATEWAY_DEADLINE_SECONDS`)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
import yaml

from harness.project import Project
from harness.stack.faults import FaultyProxy, ServiceProcess, outage
from harness.stack.up import Stack, StackConfig
from services.auth.grants import grant_role
from tests.conftest import REPOSITORY
from tests.e2e.support import stack_ports

pytestmark = pytest.mark.emulator

PASSWORD = "correct-horse-battery-staple"
PROBLEMS = "https://accord.example/problems/"
UNAVAILABLE = PROBLEMS + "dependency-unavailable"
HOME = {
    "label": "Home",
    "line1": "12 St James's Square",
    "city": "London",
    "postalCode": "SW1Y 4JH",
    "country": "GB",
}
# Short deadlines, so a stalled part is given up in half a second. The call's own timeout is
# under the part's, so one retry fits in it as the kit's policy would make it.
DEADLINES = {
    "GATEWAY_CALL_TIMEOUT_SECONDS": "0.3",
    "GATEWAY_CALL_RETRIES": "1",
    "GATEWAY_PART_TIMEOUT_SECONDS": "0.5",
    "GATEWAY_DEADLINE_SECONDS": "1.5",
}
FAST = {
    "ACCORD_ENV": "local",
    "AUTH_ARGON2_TIME_COST": "1",
    "AUTH_ARGON2_MEMORY_COST_KIB": "1024",
    "AUTH_ARGON2_PARALLELISM": "1",
    "AUTH_REGISTRATIONS_PER_ADDRESS": "1000",
    "USER_CONSUMER_WAIT_SECONDS": "1",
    # A refused role confirmation is not cached, but an answered one is: a short cache, so
    # that no test meets another's confirmation.
    "USER_ROLES_CACHE_SECONDS": "0",
    "GATEWAY_ROLES_CACHE_SECONDS": "0",
    **DEADLINES,
}


# --- the contract ------------------------------------------------------------------------------


def _gateway_contract() -> dict[str, Any]:
    path = REPOSITORY / "contracts" / "openapi" / "gateway-service.yaml"
    document: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
    return document


CONTRACT = _gateway_contract()


def conforms(answer: httpx.Response, schema: str) -> dict[str, Any]:
    """The answer's body, checked against the contract's schema `schema`."""
    body: dict[str, Any] = answer.json()
    resolver = {"$ref": f"#/components/schemas/{schema}", "components": CONTRACT["components"]}
    jsonschema.validate(body, resolver, cls=jsonschema.Draft202012Validator)
    return body


def overview(answer: httpx.Response) -> dict[str, Any]:
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "application/json"
    return conforms(answer, "Overview")


def unavailable(answer: httpx.Response) -> dict[str, Any]:
    """The 503 the contract gives when the account cannot be had."""
    assert answer.status_code == 503, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    assert int(answer.headers["retry-after"]) > 0
    body = conforms(answer, "Problem")
    assert body["type"] == UNAVAILABLE
    return body


def parts(body: dict[str, Any]) -> tuple[Any, str, Any]:
    """The overview's profile, its status and the addresses."""
    return body["profile"], body["profileStatus"], body["addresses"]


def missing(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The overview's problems by the part each concerns."""
    return {problem["part"]: problem for problem in body["problems"]}


# --- the stack ----------------------------------------------------------------------------------

StartStack = Callable[[], Awaitable["Platform"]]


class Platform:
    """The stack, an HTTP client, and what the tests do with them."""

    def __init__(self, stack: Stack, http: httpx.AsyncClient) -> None:
        self.stack = stack
        self.http = http

    def url(self, part: str) -> str:
        return self.stack.config.url(part)

    async def start_gateway(self, **env: str) -> str:
        """The gateway in the test's process, its settings from the stack's environment and
        `env` over it; its URL."""
        await self.stack.start_service("gateway", env=env)
        return self.url("gateway")

    async def sign_up(self) -> dict[str, Any]:
        email = f"g-{uuid.uuid4().hex[:10]}@example.com"
        answer = await self.http.post(
            f"{self.url('auth')}/api/v1/auth/register",
            json={"email": email, "password": PASSWORD},
        )
        assert answer.status_code == 201, answer.text
        return {**answer.json(), "email": email}

    async def admin(self) -> dict[str, Any]:
        """A new user made an admin (`accord roles grant`), signed in again for the role."""
        user = await self.sign_up()
        await grant_role(f"sqlite:///{self.stack.config.state / 'auth.db'}", user["email"], "admin")
        login = await self.http.post(
            f"{self.url('auth')}/api/v1/auth/login",
            json={"email": user["email"], "password": PASSWORD},
        )
        assert login.status_code == 200, login.text
        return {**user, **login.json()}

    async def with_profile(self, user: dict[str, Any], user_service: str | None = None) -> None:
        """Wait for the user's profile (its `user.created` consumed), and give it an address."""
        base = user_service or self.url("user")
        profile = f"{base}/api/v1/users/{user['userId']}"

        async def created() -> bool:
            return (await self.http.get(profile, headers=bearer(user))).status_code == 200

        await eventually(created, f"the profile of {user['userId']}")
        answer = await self.http.post(f"{profile}/addresses", json=HOME, headers=bearer(user))
        assert answer.status_code == 201, answer.text

    async def me(self, gateway: str, user: dict[str, Any]) -> httpx.Response:
        return await self.http.get(f"{gateway}/api/v1/me", headers=bearer(user))

    async def overview_of(
        self, gateway: str, user_id: str, caller: dict[str, Any]
    ) -> httpx.Response:
        return await self.http.get(
            f"{gateway}/api/v1/users/{user_id}/overview", headers=bearer(caller)
        )


def bearer(user: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {user['accessToken']}"}


async def eventually(check: Callable[[], Awaitable[bool]], what: str, seconds: float = 30) -> None:
    """Wait until `check` holds (a bound on waiting, not a claim about speed)."""
    deadline = asyncio.get_running_loop().time() + seconds
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{what}: not there within {seconds} s")
        await asyncio.sleep(0.1)


@pytest.fixture
async def start_platform(tmp_path: Path) -> AsyncIterator[StartStack]:
    """Starts the platform on free ports with no service running yet."""
    stacks: list[Stack] = []
    clients: list[httpx.AsyncClient] = []

    async def start() -> Platform:
        config = StackConfig(
            project=Project.load(REPOSITORY),
            ports=stack_ports(),
            state_dir=tmp_path / "state",
            services=(),
            extra_env=FAST,
        )
        stack = Stack(config, lambda line: None)
        stacks.append(stack)
        await stack.start()
        http = httpx.AsyncClient(timeout=15)
        clients.append(http)
        return Platform(stack, http)

    yield start
    for http in clients:
        await http.aclose()
    for stack in stacks:
        await stack.stop()


# --- everything up ----------------------------------------------------------------------------


async def test_with_every_service_up_the_overview_is_complete_for_the_owner_and_an_admin(
    start_platform: StartStack,
) -> None:
    platform = await start_platform()
    await platform.stack.start_service("auth")
    await platform.stack.start_service("user")
    gateway = await platform.start_gateway()
    owner, other, admin = await platform.sign_up(), await platform.sign_up(), await platform.admin()
    await platform.with_profile(owner)

    mine = overview(await platform.me(gateway, owner))
    as_owner = overview(await platform.overview_of(gateway, owner["userId"], owner))
    as_admin = overview(await platform.overview_of(gateway, owner["userId"], admin))
    as_other = await platform.overview_of(gateway, owner["userId"], other)

    for body in (mine, as_owner, as_admin):
        assert (body["partial"], body["problems"]) == (False, [])
        assert body["profileStatus"] == "available"
        assert body["account"]["id"] == body["profile"]["id"] == owner["userId"]
        assert body["account"]["email"] == owner["email"]
        assert body["account"]["roles"] == ["user"]
        assert [address["label"] for address in body["addresses"]] == ["Home"]
    assert as_other.status_code == 403, as_other.text
    assert conforms(as_other, "Problem")["type"] == PROBLEMS + "forbidden"


# --- the user service failing: partial answers -------------------------------------------------


async def test_with_the_user_service_stopped_the_overview_is_partial_with_a_problem_per_part(
    start_platform: StartStack,
) -> None:
    platform = await start_platform()
    stack = platform.stack
    await stack.start_service("auth")
    user_service = ServiceProcess("user", stack.env, stack.config.ports["user"])
    async with user_service:
        gateway = await platform.start_gateway()
        owner = await platform.sign_up()
        await platform.with_profile(owner)
        assert overview(await platform.me(gateway, owner))["partial"] is False

        await user_service.stop()
        answer = await platform.me(gateway, owner)

    body = overview(answer)
    assert body["account"]["id"] == owner["userId"]
    assert body["partial"] is True
    assert parts(body) == (None, "unavailable", None)
    problems = missing(body)
    assert set(problems) == {"profile", "addresses"}
    assert {(p["type"], p["status"]) for p in problems.values()} == {(UNAVAILABLE, 503)}


async def test_with_the_user_service_stalled_past_the_part_deadline_the_overview_is_partial(
    start_platform: StartStack,
) -> None:
    platform = await start_platform()
    await platform.stack.start_service("auth")
    await platform.stack.start_service("user")
    owner = await platform.sign_up()
    await platform.with_profile(owner)
    async with FaultyProxy.to(platform.url("user")) as link:
        gateway = await platform.start_gateway(GATEWAY_USER_SERVICE_URL=link.endpoint)
        assert overview(await platform.me(gateway, owner))["partial"] is False

        async with outage(link, "stalled"):
            answer = await platform.me(gateway, owner)

    body = overview(answer)
    assert body["partial"] is True
    assert parts(body) == (None, "unavailable", None)
    problems = missing(body)
    assert set(problems) == {"profile", "addresses"}
    assert {(p["type"], p["status"]) for p in problems.values()} == {(UNAVAILABLE, 503)}


async def test_with_the_user_service_answering_503_the_overview_is_partial_not_an_error(
    start_platform: StartStack,
) -> None:
    # The user service answers 503 when it cannot confirm an admin's role with the auth
    # service: its link to the auth service is cut, the gateway's is not.
    platform = await start_platform()
    stack = platform.stack
    await stack.start_service("auth")
    async with FaultyProxy.to(platform.url("auth")) as users_link:
        await stack.start_service("user", env={"USER_AUTH_SERVICE_URL": users_link.endpoint})
        gateway = await platform.start_gateway()
        owner, admin = await platform.sign_up(), await platform.admin()
        await platform.with_profile(owner)
        async with outage(users_link):
            refused = await platform.http.get(
                f"{platform.url('user')}/api/v1/users/{owner['userId']}", headers=bearer(admin)
            )
            answer = await platform.overview_of(gateway, owner["userId"], admin)

    assert refused.status_code == 503, refused.text  # what the gateway met
    body = overview(answer)
    assert body["account"]["id"] == owner["userId"]
    assert body["partial"] is True
    assert parts(body) == (None, "unavailable", None)
    problems = missing(body)
    assert set(problems) == {"profile", "addresses"}
    assert {p["status"] for p in problems.values()} == {503}
    assert {p["type"] for p in problems.values()} == {UNAVAILABLE}


async def test_a_profile_still_pending_is_reported_as_pending_not_as_a_partial_answer(
    start_platform: StartStack,
) -> None:
    platform = await start_platform()
    stack = platform.stack
    await stack.start_service("auth")
    # The user service's consumer reaches its queue through a link that goes down, so the
    # `user.created` of a registration stays in flight while the HTTP API answers.
    async with FaultyProxy.to(stack.endpoint) as queue_link:
        await stack.start_service("user", env={"AWS_ENDPOINT_URL": queue_link.endpoint})
        gateway = await platform.start_gateway()
        async with outage(queue_link):
            newcomer = await platform.sign_up()
            direct = await platform.http.get(
                f"{platform.url('user')}/api/v1/users/{newcomer['userId']}",
                headers=bearer(newcomer),
            )
            answer = await platform.me(gateway, newcomer)

    assert direct.status_code == 404, direct.text
    assert direct.json()["type"] == PROBLEMS + "profile-pending"
    body = overview(answer)
    assert body["account"]["id"] == newcomer["userId"]
    assert parts(body) == (None, "pending", [])
    assert (body["partial"], body["problems"]) == (False, [])


# --- the auth service failing: no account, 503 ---------------------------------------------------


@pytest.mark.parametrize("fault", ["down", "stalled"])
async def test_without_the_auth_service_the_answer_is_503_with_retry_after(
    start_platform: StartStack, fault: str
) -> None:
    platform = await start_platform()
    await platform.stack.start_service("auth")
    await platform.stack.start_service("user")
    owner, admin = await platform.sign_up(), await platform.admin()
    await platform.with_profile(owner)
    # The account's calls (and an admin's confirmation) cross the link; the key set that
    # verifies tokens is fetched directly (`GATEWAY_JWKS_URL`), and already has been.
    async with FaultyProxy.to(platform.url("auth")) as link:
        gateway = await platform.start_gateway(GATEWAY_AUTH_SERVICE_URL=link.endpoint)
        assert overview(await platform.me(gateway, owner))["partial"] is False

        async with outage(link, "down" if fault == "down" else "stalled"):
            mine = await platform.me(gateway, owner)
            as_admin = await platform.overview_of(gateway, owner["userId"], admin)
            as_owner = await platform.overview_of(gateway, owner["userId"], owner)

    for answer in (mine, as_admin, as_owner):
        unavailable(answer)
