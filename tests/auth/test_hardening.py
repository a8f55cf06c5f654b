"""The auth service's security guarantees under attack: admin rights read from the database at
request time, login limits that are counted before hashing and cannot lock a victim out, client
addresses only from trusted proxies, and answers whose timing says nothing. On SQLite and
PostgreSQL."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import replace
from typing import Any

import httpx
import pytest

from services.auth.app import build_adapters, create_app
from services.auth.handlers import LOGIN_FAILURES_PER_ACCOUNT_ADDRESS, LOGIN_FAILURES_PER_ADDRESS
from services.auth.passwords import Argon2PasswordHasher
from services.auth.ratelimit import SqlRateLimiter
from services.auth.storage import SqlAuthStore
from tests.auth.conftest import PASSWORD, AuthClient, Bus, Clock, bearer

LOGIN = "/api/v1/auth/login"
REGISTER = "/api/v1/auth/register"
RESET = "/api/v1/auth/password-reset"


def roles(user_id: object) -> str:
    return f"/api/v1/auth/users/{user_id}/roles"


def deactivate(user_id: object) -> str:
    return f"/api/v1/auth/users/{user_id}/deactivate"


class CountingHasher(Argon2PasswordHasher):
    """The real hasher, counting every hash and verification it is asked for, and able to hold
    them all at a gate so that a test can see how many are in flight."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.hashes = 0
        self.verifications = 0
        self.gate: asyncio.Event | None = None
        self.waiting = 0

    async def _pass_gate(self) -> None:
        if self.gate is not None:
            self.waiting += 1
            await self.gate.wait()

    async def hash(self, password: str) -> str:
        self.hashes += 1
        await self._pass_gate()
        return await super().hash(password)

    async def verify(self, password_hash: str, password: str) -> bool:
        self.verifications += 1
        await self._pass_gate()
        return await super().verify(password_hash, password)


@pytest.fixture
def hasher() -> CountingHasher:
    return CountingHasher(time_cost=1, memory_cost=1024, parallelism=1)


async def login(http: httpx.AsyncClient, email: str, password: str = PASSWORD) -> httpx.Response:
    return await http.post(LOGIN, json={"email": email, "password": password})


# --- admin rights come from the database --------------------------------------------------


async def test_a_demoted_admins_old_token_gets_403_on_set_user_roles(auth: AuthClient) -> None:
    admin, boss = await auth.admin(), await auth.admin()
    target = await auth.register()
    demoted = await auth.http.put(
        roles(admin["userId"]), json={"roles": ["user"]}, headers=bearer(boss)
    )
    assert demoted.status_code == 200

    promote_self = await auth.http.put(
        roles(admin["userId"]), json={"roles": ["user", "admin"]}, headers=bearer(admin)
    )
    promote_other = await auth.http.put(
        roles(target["userId"]), json={"roles": ["user", "admin"]}, headers=bearer(admin)
    )
    read_roles = await auth.http.get(roles(target["userId"]), headers=bearer(admin))
    deactivate_other = await auth.http.post(deactivate(target["userId"]), headers=bearer(admin))

    assert [r.status_code for r in (promote_self, promote_other, read_roles)] == [403] * 3
    assert deactivate_other.status_code == 403
    still = await auth.http.get(roles(target["userId"]), headers=bearer(boss))
    assert still.json()["roles"] == ["user"]


async def test_a_deactivated_admins_token_gets_401_on_every_admin_operation(
    auth: AuthClient,
) -> None:
    admin, other = await auth.admin(), await auth.register()
    assert (
        await auth.http.post(deactivate(admin["userId"]), headers=bearer(admin))
    ).status_code == 204

    answers = [
        await auth.http.get(roles(other["userId"]), headers=bearer(admin)),
        await auth.http.put(
            roles(admin["userId"]), json={"roles": ["user", "admin"]}, headers=bearer(admin)
        ),
        await auth.http.put(
            roles(other["userId"]), json={"roles": ["user", "admin"]}, headers=bearer(admin)
        ),
        await auth.http.post(deactivate(other["userId"]), headers=bearer(admin)),
    ]

    assert [answer.status_code for answer in answers] == [401] * 4
    assert {answer.json()["type"].rsplit("/", 1)[-1] for answer in answers} == {"unauthenticated"}


async def test_a_promotion_takes_effect_before_the_token_says_so(auth: AuthClient) -> None:
    admin, promoted, target = await auth.admin(), await auth.register(), await auth.register()
    await auth.http.put(
        roles(promoted["userId"]), json={"roles": ["user", "admin"]}, headers=bearer(admin)
    )

    answer = await auth.http.get(roles(target["userId"]), headers=bearer(promoted))

    assert answer.status_code == 200


async def test_the_roles_look_up_refuses_a_deactivated_account(auth: AuthClient) -> None:
    admin, user = await auth.admin(), await auth.register()
    key = {"X-API-Key": auth.settings.service_api_key.get_secret_value()}
    before = await auth.http.get(roles(admin["userId"]), headers=key)
    await auth.http.post(deactivate(admin["userId"]), headers=bearer(admin))
    await auth.http.post(deactivate(user["userId"]), headers=bearer(user))

    answers = [
        await auth.http.get(roles(admin["userId"]), headers=key),
        await auth.http.get(roles(user["userId"]), headers=key),
    ]

    assert before.json()["roles"] == ["admin", "user"]
    assert [answer.status_code for answer in answers] == [404, 404]
    assert "active" in answers[0].json()["detail"]


# --- login limits ---------------------------------------------------------------------------


@pytest.fixture
def start_counted(hasher: CountingHasher, settings: Any, bus: Bus, clock: Clock) -> Any:
    """`start_auth`, but with the counting hasher in place of the real one."""

    def start(client: tuple[str, int] = ("198.51.100.1", 4000), **overrides: Any) -> Any:
        return StartedService(settings.model_copy(update=overrides), hasher, bus, clock, client)

    return start


class StartedService:
    def __init__(
        self, settings: Any, hasher: CountingHasher, bus: Bus, clock: Clock, client: tuple[str, int]
    ) -> None:
        self.settings, self.hasher, self.bus, self.clock, self.client = (
            settings,
            hasher,
            bus,
            clock,
            client,
        )
        self._lifespan: Any = None

    async def __aenter__(self) -> Any:
        adapters = replace(
            build_adapters(self.settings, clock=self.clock),
            publisher=self.bus.publisher(),
            passwords=self.hasher,
        )
        self.app = create_app(self.settings, adapters=adapters)
        self.adapters = adapters
        self._lifespan = self.app.router.lifespan_context(self.app)
        await self._lifespan.__aenter__()
        return self

    def client_at(self, host: str) -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=self.app, client=(host, 4000))
        return httpx.AsyncClient(transport=transport, base_url="http://auth")

    async def __aexit__(self, *exc: object) -> None:
        await self._lifespan.__aexit__(*exc)


async def register(http: httpx.AsyncClient, email: str) -> dict[str, Any]:
    response = await http.post(REGISTER, json={"email": email, "password": PASSWORD})
    assert response.status_code == 201, response.text
    answer: dict[str, Any] = response.json()
    return answer


async def test_fifty_parallel_wrong_logins_for_one_account_cost_at_most_the_limit_in_hashes(
    start_counted: Any, hasher: CountingHasher
) -> None:
    async with (
        start_counted(
            login_failures_per_account_address=5,
            login_failures_per_address=30,
            login_hashes_in_flight_per_account=50,
            login_hashes_in_flight_per_address=50,
        ) as service,
        service.client_at("198.51.100.7") as http,
    ):
        await register(http, "victim@example.com")
        hasher.verifications = 0

        answers = await asyncio.gather(
            *(login(http, "victim@example.com", "wrong-guess-1234") for _ in range(50))
        )

    statuses = sorted(answer.status_code for answer in answers)
    assert statuses == [401] * 5 + [429] * 45
    assert hasher.verifications == 5
    assert all("Retry-After" in a.headers for a in answers if a.status_code == 429)


async def test_logins_past_the_in_flight_cap_are_refused_at_once_without_hashing(
    start_counted: Any, hasher: CountingHasher
) -> None:
    async with (
        start_counted(
            login_failures_per_account_address=100,
            login_failures_per_address=100,
            login_hashes_in_flight_per_account=2,
            login_hashes_in_flight_per_address=4,
        ) as service,
        service.client_at("198.51.100.8") as http,
    ):
        await register(http, "busy@example.com")
        hasher.verifications, hasher.waiting = 0, 0
        hasher.gate = asyncio.Event()
        held = [asyncio.create_task(login(http, "busy@example.com")) for _ in range(2)]
        while hasher.waiting < 2:
            await asyncio.sleep(0.005)

        refused = await login(http, "busy@example.com")
        other_account = asyncio.create_task(login(http, "someone-else@example.com"))
        while hasher.waiting < 3:
            await asyncio.sleep(0.005)
        hasher.gate.set()
        finished = await asyncio.gather(*held, other_account)

    assert refused.status_code == 429
    assert refused.json()["type"].endswith("/rate-limited")
    assert hasher.verifications == 3  # the two held and the other account: not the refused one
    assert [answer.status_code for answer in finished] == [200, 200, 401]


async def test_a_victim_logs_in_from_another_address_during_an_attack(
    start_counted: Any, hasher: CountingHasher
) -> None:
    async with (
        start_counted(login_failures_per_account_address=5) as service,
        service.client_at("203.0.113.66") as attacker,
        service.client_at("198.51.100.20") as victim,
    ):
        await register(victim, "victim@example.com")
        attack = [await login(attacker, "victim@example.com", "guess-guess-1") for _ in range(8)]
        during = await login(victim, "victim@example.com")
        attacker_right = await login(attacker, "victim@example.com")

    assert [a.status_code for a in attack] == [401] * 5 + [429] * 3
    assert during.status_code == 200
    assert attacker_right.status_code == 429  # the guesser's address stays blocked


async def test_a_successful_login_is_not_counted(start_counted: Any) -> None:
    async with start_counted(login_failures_per_account_address=3) as service:
        async with service.client_at("198.51.100.30") as http:
            await register(http, "often@example.com")
            answers = [await login(http, "often@example.com") for _ in range(10)]
        limiter = service.adapters.limiter
        assert isinstance(limiter, SqlRateLimiter)
        counted = await limiter.count(LOGIN_FAILURES_PER_ADDRESS, "198.51.100.30")

    assert {answer.status_code for answer in answers} == {200}
    assert counted == 0


async def test_limits_hold_across_two_replicas_on_one_database(
    start_counted: Any, settings: Any, bus: Bus, clock: Clock, hasher: CountingHasher
) -> None:
    async with (
        start_counted(login_failures_per_account_address=4) as one,
        start_counted(login_failures_per_account_address=4) as two,
    ):
        async with (
            one.client_at("198.51.100.40") as first,
            two.client_at("198.51.100.40") as second,
        ):
            await register(first, "shared@example.com")
            answers = []
            for index in range(6):
                http = first if index % 2 else second
                answers.append(await login(http, "shared@example.com", "wrong-wrong-wrong"))
        limiter = one.adapters.limiter
        assert isinstance(limiter, SqlRateLimiter)
        counted = await limiter.count(
            LOGIN_FAILURES_PER_ACCOUNT_ADDRESS, "shared@example.com 198.51.100.40"
        )

    assert [answer.status_code for answer in answers] == [401] * 4 + [429] * 2
    assert counted == 4


# --- client addresses ---------------------------------------------------------------------


async def test_x_forwarded_for_is_ignored_unless_the_peer_is_a_trusted_proxy(
    start_counted: Any,
) -> None:
    async with (
        start_counted(login_failures_per_address=2) as service,
        service.client_at("127.0.0.1") as http,
    ):
        answers = [
            await http.post(
                LOGIN,
                json={"email": f"x{i}@example.com", "password": PASSWORD},
                headers={"X-Forwarded-For": f"192.0.2.{i}"},
            )
            for i in range(3)
        ]

    assert [answer.status_code for answer in answers] == [401, 401, 429]


async def test_a_trusted_proxy_forwards_the_client_address_from_the_right(
    start_counted: Any,
) -> None:
    async with (
        start_counted(login_failures_per_address=2, trusted_proxies="10.0.0.0/8") as service,
        service.client_at("10.1.2.3") as http,
    ):

        async def attempt(forwarded: str) -> int:
            response = await http.post(
                LOGIN,
                json={"email": f"{uuid.uuid4().hex}@example.com", "password": PASSWORD},
                headers={"X-Forwarded-For": forwarded},
            )
            status: int = response.status_code
            return status

        # The client claims an address of its own on the left; the proxy appends the peer.
        spoofed = [await attempt(f"192.0.2.{i}, 198.51.100.99") for i in range(3)]
        other_client = await attempt("198.51.100.100")
        through_two_proxies = await attempt("198.51.100.101, 10.9.9.9")

    assert spoofed == [401, 401, 429]
    assert other_client == 401
    assert through_two_proxies == 401


def test_trusted_proxies_that_are_not_addresses_are_refused_naming_the_setting(
    settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from services.auth.settings import SettingsError, load_settings

    monkeypatch.setenv("AUTH_TRUSTED_PROXIES", "10.0.0.0/8, not-a-proxy")
    with pytest.raises(SettingsError, match="AUTH_TRUSTED_PROXIES"):
        load_settings()


# --- timing says nothing ----------------------------------------------------------------------


async def test_registering_a_taken_email_hashes_the_password_like_a_free_one(
    start_counted: Any, hasher: CountingHasher
) -> None:
    async with start_counted() as service, service.client_at("198.51.100.50") as http:
        await register(http, "taken@example.com")
        hasher.hashes = 0
        taken = await http.post(REGISTER, json={"email": "TAKEN@example.com", "password": PASSWORD})
        free = await http.post(REGISTER, json={"email": "free@example.com", "password": PASSWORD})

    assert (taken.status_code, free.status_code) == (409, 201)
    assert hasher.hashes == 2


async def test_a_reset_request_is_answered_before_the_account_is_looked_up(
    start_counted: Any, bus: Bus, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Every unit of work waits at a gate: a request that looked the email up before answering
    # could not be answered while the gate is closed.
    gate = asyncio.Event()
    gate.set()
    original = SqlAuthStore.unit_of_work

    class Gated:
        def __init__(self, inner: Any) -> None:
            self.inner = inner

        async def __aenter__(self) -> Any:
            await gate.wait()
            return await self.inner.__aenter__()

        async def __aexit__(self, *exc: Any) -> None:
            await self.inner.__aexit__(*exc)

    monkeypatch.setattr(SqlAuthStore, "unit_of_work", lambda store: Gated(original(store)))
    async with start_counted() as service, service.client_at("198.51.100.60") as http:
        user = await register(http, "known@example.com")
        gate.clear()
        answers = [
            await asyncio.wait_for(http.post(RESET, json={"email": email}), timeout=30)
            for email in ("known@example.com", "unknown@example.com")
        ]
        gate.set()
        await service.app.state.background.drain()
        published = await bus.wait_for(2)

    assert [answer.status_code for answer in answers] == [202, 202]
    resets = [event for event in published if event.eventType == "user.password.reset.requested"]
    assert [str(event.userId) for event in resets] == [user["userId"]]


async def test_a_login_refused_a_hashing_slot_is_not_counted(
    start_counted: Any, hasher: CountingHasher
) -> None:
    async with start_counted(login_hashes_in_flight_per_account=2) as service:
        async with service.client_at("198.51.100.9") as http:
            await register(http, "slots@example.com")
            hasher.verifications, hasher.waiting = 0, 0
            hasher.gate = asyncio.Event()
            held = [
                asyncio.create_task(login(http, "slots@example.com", "wrong-guess-1234"))
                for _ in range(2)
            ]
            while hasher.waiting < 2:
                await asyncio.sleep(0.005)
            refused = await login(http, "slots@example.com", "wrong-guess-1234")
            hasher.gate.set()
            await asyncio.gather(*held)
        limiter = service.adapters.limiter
        assert isinstance(limiter, SqlRateLimiter)
        counted = await limiter.count(LOGIN_FAILURES_PER_ADDRESS, "198.51.100.9")

    assert refused.status_code == 429
    assert counted == 2  # the two that were hashed, not the one refused a slot


async def test_failures_from_many_addresses_reach_the_per_account_limit(
    start_counted: Any,
) -> None:
    async with start_counted(login_failures_per_account=3) as service:
        async with service.client_at("198.51.100.70") as owner:
            await register(owner, "popular@example.com")
        answers = []
        for index in range(4):
            async with service.client_at(f"203.0.113.{index + 1}") as attacker:
                answers.append(await login(attacker, "popular@example.com", "guess-guess-9"))
        async with service.client_at("198.51.100.70") as owner:
            owner_after = await login(owner, "popular@example.com")

    assert [answer.status_code for answer in answers] == [401, 401, 401, 429]
    assert owner_after.status_code == 429


async def test_an_ipv6_host_counts_as_its_slash_64(start_counted: Any) -> None:
    async with start_counted(login_failures_per_address=2) as service:
        statuses = []
        for host in ("2001:db8::1", "2001:db8::2", "2001:db8::ffff", "2001:db8:0:1::1"):
            async with service.client_at(host) as http:
                response = await login(http, f"{uuid.uuid4().hex}@example.com")
                statuses.append(response.status_code)

    assert statuses == [401, 401, 429, 401]


@pytest.mark.parametrize(
    ("peer", "forwarded", "client"),
    [
        ("::ffff:10.0.0.5", "198.51.100.5", "198.51.100.5"),  # a dual-stack proxy's peer
        ("10.0.0.5", "198.51.100.5:5555", "198.51.100.5"),
        ("10.0.0.5", "[2001:db8::7]:443", "2001:db8::/64"),
        ("10.0.0.5", "2001:db8::7, 10.0.0.9", "2001:db8::/64"),
        ("10.0.0.5", "garbage, 198.51.100.5", "198.51.100.5"),
        ("10.0.0.5", "198.51.100.5, garbage", "10.0.0.5"),
        ("198.51.100.77", "192.0.2.1", "198.51.100.77"),  # not a trusted proxy: ignored
    ],
)
def test_client_addresses_read_the_forms_proxies_write(
    peer: str, forwarded: str, client: str
) -> None:
    from ipaddress import ip_network

    from starlette.requests import Request

    from services.auth.api import ClientAddresses

    scope = {
        "type": "http",
        "client": (peer, 4000),
        "headers": [(b"x-forwarded-for", forwarded.encode())],
    }

    assert ClientAddresses([ip_network("10.0.0.0/8")])(Request(scope)) == client
