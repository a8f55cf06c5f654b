"""The kit's client policy around the generated auth client (`services/kit/auth_client.py`):
retries with backoff and `Retry-After`, the deadline of an attempt, `AuthServiceUnavailableError`
after the attempts, the roles cache and coalescing; and the key set fetched through it, from a
real HTTP server on a local port."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import threading
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from generated.auth.client import AuthServiceClient
from services.kit import auth_client
from services.kit.auth_client import (
    AuthClient,
    AuthServiceUnavailableError,
    ClientPolicy,
    jwks_base_url,
)
from services.kit.tokens import (
    JwksKeySource,
    KeySourceUnavailableError,
    SigningKey,
    TokenIssuer,
    TokenVerifier,
    jwks,
)

SERVICE_KEY = "a-service-key-long-enough"
BASE_URL = "http://auth.test"
Answer = httpx.Response | Exception


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Pauses:
    """A `sleep` that records the pauses and does not wait."""

    def __init__(self) -> None:
        self.taken: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.taken.append(seconds)


class AuthService:
    """The auth service's `getUserRoles`, scripted: each request takes the next answer (the last
    one repeats), after `delay` seconds."""

    def __init__(self, *answers: Answer, delay: float = 0.0) -> None:
        self.answers = list(answers)
        self.delay = delay
        self.requests: list[httpx.Request] = []

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if self.delay:
            await asyncio.sleep(self.delay)
        if isinstance(answer, Exception):
            raise answer
        return answer


def roles_of(user_id: uuid.UUID, *roles: str) -> httpx.Response:
    return httpx.Response(200, json={"userId": str(user_id), "roles": list(roles)})


def problem(status: int, **headers: str) -> httpx.Response:
    body = {"type": "about:blank", "title": "Failure", "status": status}
    return httpx.Response(status, json=body, headers=headers)


def policy_over(
    auth: AuthService,
    *,
    clock: Callable[[], float] | None = None,
    sleep: Callable[[float], Awaitable[None]] | None = None,
    **policy: Any,
) -> AuthClient:
    http = httpx.AsyncClient(transport=httpx.MockTransport(auth), base_url=BASE_URL)
    return AuthClient(
        AuthServiceClient(http, service_api_key=SERVICE_KEY),
        ClientPolicy(**policy),
        clock=clock or Clock(),
        sleep=sleep or Pauses(),
    )


# --- one look-up ------------------------------------------------------------------------------


async def test_the_roles_of_a_user_are_read_with_the_service_key() -> None:
    user = uuid.uuid4()
    auth = AuthService(roles_of(user, "user", "admin"))

    assert await policy_over(auth).roles(user) == frozenset({"user", "admin"})

    [request] = auth.requests
    assert request.url == f"{BASE_URL}/api/v1/auth/users/{user}/roles"
    assert request.headers["X-API-Key"] == SERVICE_KEY


async def test_a_user_the_auth_service_does_not_know_has_no_roles_and_is_asked_for_again() -> None:
    auth = AuthService(problem(404))
    client = policy_over(auth)
    user = uuid.uuid4()

    assert await client.roles(user) is None
    assert await client.roles(user) is None  # may be registering: "unknown" is not cached
    assert len(auth.requests) == 2


@pytest.mark.parametrize(
    "failure",
    [
        httpx.ConnectError("refused"),
        httpx.ReadTimeout("slow"),
        problem(429),
        problem(500),
        problem(502),
        problem(503),
        httpx.Response(504, text="gateway timeout"),
    ],
    ids=["refused", "read timeout", "429", "500", "502", "503", "504 without a problem"],
)
async def test_a_failure_worth_retrying_is_retried_and_the_next_answer_used(
    failure: Answer,
) -> None:
    user = uuid.uuid4()
    auth = AuthService(failure, failure, roles_of(user, "user"))

    assert await policy_over(auth, retries=2).roles(user) == frozenset({"user"})
    assert len(auth.requests) == 3


async def test_when_the_retries_are_spent_the_auth_service_is_unavailable() -> None:
    auth = AuthService(problem(503))

    with pytest.raises(AuthServiceUnavailableError, match="status 503"):
        await policy_over(auth, retries=3).roles(uuid.uuid4())
    assert len(auth.requests) == 4


async def test_no_retries_means_one_attempt() -> None:
    auth = AuthService(httpx.ConnectError("refused"))

    with pytest.raises(AuthServiceUnavailableError, match="ConnectError"):
        await policy_over(auth, retries=0).roles(uuid.uuid4())
    assert len(auth.requests) == 1


async def test_the_pauses_between_attempts_double_up_to_the_cap() -> None:
    pauses = Pauses()
    auth = AuthService(problem(500))

    with pytest.raises(AuthServiceUnavailableError):
        await policy_over(auth, retries=5, backoff=0.1, max_pause=0.5, sleep=pauses).roles(
            uuid.uuid4()
        )
    assert pauses.taken == pytest.approx([0.1, 0.2, 0.4, 0.5, 0.5])


async def test_a_retry_after_within_the_cap_is_waited_for_before_asking_again() -> None:
    pauses = Pauses()
    user = uuid.uuid4()
    auth = AuthService(problem(503, **{"Retry-After": "2"}), problem(429), roles_of(user, "user"))

    roles = await policy_over(auth, backoff=0.1, max_pause=3.0, sleep=pauses).roles(user)

    assert roles == frozenset({"user"})
    assert pauses.taken == pytest.approx([2.0, 0.2])  # the second 429 said nothing: backoff


async def test_a_retry_after_beyond_the_cap_ends_the_attempts_at_once() -> None:
    pauses = Pauses()
    auth = AuthService(problem(503, **{"Retry-After": "120"}))

    with pytest.raises(AuthServiceUnavailableError, match="retry after 120 s"):
        await policy_over(auth, retries=3, max_pause=2.0, sleep=pauses).roles(uuid.uuid4())
    assert len(auth.requests) == 1
    assert pauses.taken == []


async def test_an_attempt_that_outlasts_its_deadline_is_abandoned_and_retried() -> None:
    user = uuid.uuid4()
    auth = AuthService(roles_of(user, "user"), delay=0.5)
    client = policy_over(auth, timeout=0.05, retries=2)

    with pytest.raises(AuthServiceUnavailableError, match=r"no answer within 0\.05 s"):
        await client.roles(user)
    assert len(auth.requests) == 3

    auth.delay = 0.0
    assert await client.roles(user) == frozenset({"user"})


@pytest.mark.parametrize("status", [401, 403])
async def test_a_refused_service_key_is_unavailable_at_once_and_names_the_setting(
    status: int, caplog: pytest.LogCaptureFixture
) -> None:
    auth = AuthService(problem(status))
    http = httpx.AsyncClient(transport=httpx.MockTransport(auth), base_url=BASE_URL)
    client = AuthClient.over(
        http, ClientPolicy(retries=3), service_api_key="wrong", credential="X_API_KEY_SETTING"
    )

    with (
        caplog.at_level(logging.ERROR, logger="accord.auth_client"),
        pytest.raises(AuthServiceUnavailableError, match="refused X_API_KEY_SETTING"),
    ):
        await client.roles(uuid.uuid4())
    assert len(auth.requests) == 1
    assert "X_API_KEY_SETTING" in caplog.text


@pytest.mark.parametrize(
    "answer",
    [
        httpx.Response(200, json={"roles": "admin"}),
        httpx.Response(200, json={"userId": str(uuid.uuid4()), "roles": ["root"]}),
        httpx.Response(200, text="<html>maintenance</html>"),
        problem(400),
    ],
    ids=["roles not a list", "unknown role", "not JSON", "400"],
)
async def test_an_answer_no_retry_can_fix_is_unavailable_at_once(answer: httpx.Response) -> None:
    auth = AuthService(answer)

    with pytest.raises(AuthServiceUnavailableError):
        await policy_over(auth, retries=3, cache_seconds=0).roles(uuid.uuid4())
    assert len(auth.requests) == 1


# --- coalescing and the cache ---------------------------------------------------------------


async def test_concurrent_look_ups_of_one_user_share_one_request() -> None:
    user, other = uuid.uuid4(), uuid.uuid4()
    auth = AuthService(roles_of(user, "user"), delay=0.05)
    client = policy_over(auth)

    answers = await asyncio.gather(*(client.roles(user) for _ in range(20)))
    await client.roles(other)

    assert set(answers) == {frozenset({"user"})}
    assert len(auth.requests) == 2  # one for the twenty, one for the other user


async def test_concurrent_look_ups_share_a_failure_too() -> None:
    auth = AuthService(problem(503), delay=0.05)
    client = policy_over(auth, retries=1)
    user = uuid.uuid4()

    answers = await asyncio.gather(*(client.roles(user) for _ in range(5)), return_exceptions=True)

    assert all(isinstance(answer, AuthServiceUnavailableError) for answer in answers)
    assert len(auth.requests) == 2  # one look-up of two attempts for the five callers


async def test_a_caller_that_goes_away_does_not_cancel_the_look_up_the_others_wait_for() -> None:
    user = uuid.uuid4()
    auth = AuthService(roles_of(user, "user"), delay=0.1)
    client = policy_over(auth)

    impatient = asyncio.create_task(client.roles(user))
    patient = asyncio.create_task(client.roles(user))
    await asyncio.sleep(0.02)
    impatient.cancel()

    assert await patient == frozenset({"user"})
    assert impatient.cancelled()
    assert len(auth.requests) == 1


async def test_an_answer_is_reused_until_the_cache_expires() -> None:
    user = uuid.uuid4()
    auth = AuthService(roles_of(user, "user", "admin"), roles_of(user, "user"))
    clock = Clock()
    client = policy_over(auth, cache_seconds=10, clock=clock)

    first = await client.roles(user)
    clock.now += 9.9
    cached = await client.roles(user)
    clock.now += 0.2
    fresh = await client.roles(user)

    assert first == cached == frozenset({"user", "admin"})
    assert fresh == frozenset({"user"})  # the revoked role is gone once the cache expired
    assert len(auth.requests) == 2


async def test_a_cache_of_zero_seconds_asks_every_time() -> None:
    user = uuid.uuid4()
    auth = AuthService(roles_of(user, "user"))
    client = policy_over(auth, cache_seconds=0)

    for _ in range(3):
        await client.roles(user)
    assert len(auth.requests) == 3


async def test_evict_drops_the_cached_answer_of_that_user_only() -> None:
    user, other = uuid.uuid4(), uuid.uuid4()
    auth = AuthService(roles_of(user, "user"))
    client = policy_over(auth, cache_seconds=3600, clock=Clock())
    await client.roles(user)
    await client.roles(other)

    client.evict(user)
    client.evict(uuid.uuid4())  # never looked up: nothing to drop
    await client.roles(user)
    await client.roles(other)

    assert [request.url.path.split("/")[-2] for request in auth.requests] == [
        str(user),
        str(other),
        str(user),
    ]


async def test_an_answer_on_its_way_when_its_user_is_evicted_is_not_cached() -> None:
    user = uuid.uuid4()
    auth = AuthService(roles_of(user, "user", "admin"), roles_of(user, "user"), delay=0.05)
    client = policy_over(auth, cache_seconds=3600, clock=Clock())

    before = asyncio.create_task(client.roles(user))
    await asyncio.sleep(0.01)
    client.evict(user)  # the account changed while its roles were on their way
    stale = await before
    after = await client.roles(user)

    assert stale == frozenset({"user", "admin"})  # asked before the change
    assert after == frozenset({"user"})
    assert len(auth.requests) == 2


async def test_the_cache_keeps_the_users_looked_up_most_recently(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(auth_client, "MAX_CACHED_USERS", 2)
    users = [uuid.uuid4() for _ in range(3)]
    auth = AuthService(roles_of(users[0], "user"))
    client = policy_over(auth, cache_seconds=3600, clock=Clock())

    for user in (*users, users[2], users[0]):
        await client.roles(user)

    assert len(auth.requests) == 4  # the first user was the oldest when the third came


# --- the key set, over a real HTTP server -----------------------------------------------------


class KeySetServer:
    """A real HTTP server on a local port: the key set at `/ok/.well-known/jwks.json`, and under
    other prefixes the ways an answer can go wrong."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document
        self.requests: list[str] = []
        self.release = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.requests.append(self.path)
                prefix = self.path.removesuffix("/.well-known/jwks.json")
                body = json.dumps(server.document).encode()
                if prefix == "/ok":
                    self.reply(200, body, {"Cache-Control": "public, max-age=25"})
                elif prefix == "/broken":
                    self.reply(500, b'{"title": "Internal Server Error", "status": 500}')
                elif prefix == "/not-json":
                    self.reply(200, b"<html>maintenance</html>", {"Cache-Control": "no-store"})
                elif prefix == "/no-cache-control":
                    self.reply(200, body)
                elif prefix == "/slow":
                    server.release.wait(timeout=5)
                    self.reply(200, body, {"Cache-Control": "public, max-age=25"})
                else:
                    self.reply(404, b"{}")

            def reply(
                self, status: int, body: bytes, headers: dict[str, str] | None = None
            ) -> None:
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    for name, value in (headers or {}).items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a timeout under test)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.http.serve_forever, daemon=True)

    def url(self, prefix: str) -> str:
        host, port = self.http.server_address[:2]
        return f"http://{host!s}:{port}{prefix}"


@pytest.fixture
def key() -> SigningKey:
    return SigningKey.generate()


@pytest.fixture
def key_server(key: SigningKey) -> Iterator[KeySetServer]:
    server = KeySetServer(jwks(key))
    server.thread.start()
    yield server
    server.release.set()
    server.http.shutdown()
    server.http.server_close()
    server.thread.join(timeout=5)


@pytest.fixture
def closed_port_url() -> str:
    """A base URL on 127.0.0.1 where nothing listens."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(trust_env=False) as client:
        yield client


def key_set_at(base_url: str, http: httpx.AsyncClient, **policy: Any) -> AuthClient:
    http.base_url = httpx.URL(base_url)
    return AuthClient.over(http, ClientPolicy(**{"backoff": 0.01, **policy}))


async def test_the_key_set_is_the_jwks_document_the_auth_service_publishes(
    key_server: KeySetServer, key: SigningKey, http: httpx.AsyncClient
) -> None:
    fetch = key_set_at(key_server.url("/ok"), http).jwks

    assert await fetch() == jwks(key)
    assert key_server.requests == ["/ok/.well-known/jwks.json"]


@pytest.mark.parametrize(
    ("prefix", "reason", "attempts"),
    [
        ("/broken", "status 500", 3),
        ("/not-json", "breaks its contract", 1),
        ("/no-cache-control", "breaks its contract", 1),
        ("/elsewhere", "answered 404", 1),
    ],
)
async def test_a_key_set_the_auth_service_cannot_give_is_a_key_source_unavailable(
    prefix: str, reason: str, attempts: int, key_server: KeySetServer, http: httpx.AsyncClient
) -> None:
    fetch = key_set_at(key_server.url(prefix), http, retries=2).jwks

    with pytest.raises(KeySourceUnavailableError, match=reason):
        await fetch()
    assert len(key_server.requests) == attempts


async def test_a_refused_connection_is_a_key_source_unavailable(
    closed_port_url: str, http: httpx.AsyncClient
) -> None:
    fetch = key_set_at(closed_port_url, http, retries=1).jwks

    with pytest.raises(KeySourceUnavailableError, match="ConnectError"):
        await fetch()


async def test_a_key_set_slower_than_the_deadline_is_a_key_source_unavailable(
    key_server: KeySetServer, http: httpx.AsyncClient
) -> None:
    fetch = key_set_at(key_server.url("/slow"), http, timeout=0.2, retries=1).jwks

    with pytest.raises(KeySourceUnavailableError, match=r"no answer within 0\.2 s"):
        await fetch()
    assert len(key_server.requests) == 2


async def test_a_verifier_checks_tokens_against_the_key_set_fetched_through_the_policy(
    key_server: KeySetServer, key: SigningKey, http: httpx.AsyncClient
) -> None:
    keys = JwksKeySource(key_set_at(key_server.url("/ok"), http).jwks)
    verifier = TokenVerifier(keys, issuer="https://auth.test", audience="accord")
    issuer = TokenIssuer(
        key, issuer="https://auth.test", audience="accord", ttl=timedelta(minutes=5)
    )

    claims = await verifier.verify(issuer.issue("user-1", ["admin"]).token)

    assert claims.roles == ("admin",)


async def test_the_auth_service_is_reachable_while_its_liveness_probe_answers() -> None:
    auth = AuthService(httpx.Response(200, json={"status": "ok"}))
    client = policy_over(auth)
    up = await client.reachable()
    auth.answers = [httpx.ConnectError("refused")]
    down = await client.reachable()
    auth.answers = [problem(503)]
    failing = await client.reachable()

    assert (up, down, failing) == (True, False, False)
    assert {request.url.path for request in auth.requests} == {"/health/live"}


# --- settings ---------------------------------------------------------------------------------


def test_the_auth_services_base_url_is_read_from_the_url_of_its_key_set() -> None:
    assert jwks_base_url("https://auth.example/.well-known/jwks.json", "X") == (
        "https://auth.example"
    )
    assert jwks_base_url("http://gw.internal/auth/.well-known/jwks.json", "X") == (
        "http://gw.internal/auth"
    )
    with pytest.raises(ValueError, match=r"USER_JWKS_URL must end with /\.well-known/jwks\.json"):
        jwks_base_url("https://keys.example/jwks.json", "USER_JWKS_URL")


@pytest.mark.parametrize(
    "wrong",
    [{"timeout": 0}, {"retries": -1}, {"backoff": -0.1}, {"max_pause": -1}, {"cache_seconds": -1}],
)
def test_a_policy_refuses_values_that_make_no_sense(wrong: dict[str, float]) -> None:
    with pytest.raises(ValueError, match=next(iter(wrong))):
        ClientPolicy(**wrong)  # type: ignore[arg-type]
