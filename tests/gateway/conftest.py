"""The gateway in process, over scripted auth and user services (httpx's mock transport): each
answer is a response as the services' contracts write it, or a failure (a refused connection, a
delay past a deadline, a 503), and every request the gateway made is kept for the assertions."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import httpx
import pytest

from generated.auth.client import AuthServiceClient
from generated.user.client import UserServiceClient
from services.gateway.app import Adapters, create_app
from services.gateway.settings import Settings
from services.kit.security import ConfirmedRoles, ContractAuthenticator
from services.kit.tokens import SigningKey, StaticKeySource, TokenIssuer, TokenVerifier, jwks

ISSUER = "http://127.0.0.1:3001"
AUDIENCE = "accord"
PROBLEMS = "https://accord.example/problems/"


class Tokens:
    """Access tokens as the auth service issues them."""

    def __init__(self) -> None:
        self.key = SigningKey.generate()
        self._issuer = TokenIssuer(
            self.key, issuer=ISSUER, audience=AUDIENCE, ttl=timedelta(minutes=15)
        )

    def verifier(self) -> TokenVerifier:
        return TokenVerifier(StaticKeySource(jwks(self.key)), issuer=ISSUER, audience=AUDIENCE)

    def issue(self, user_id: uuid.UUID, roles: Iterable[str] = ("user",)) -> str:
        return self._issuer.issue(str(user_id), list(roles)).token


@dataclass(frozen=True)
class Answer:
    """One scripted answer: a response (or a failure raised), after `delay` seconds."""

    response: httpx.Response | Exception
    delay: float = 0.0


Script = Answer | Callable[[httpx.Request], Answer]


@dataclass
class Downstream:
    """A scripted service: for each path, the answers in turn (the last one repeats)."""

    name: str
    routes: dict[str, list[Script]] = field(default_factory=dict)
    requests: list[httpx.Request] = field(default_factory=list)

    def on(self, path: str, *answers: Script) -> None:
        self.routes[path] = list(answers)

    def asked(self, path: str) -> list[httpx.Request]:
        return [request for request in self.requests if request.url.path == path]

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        scripts = self.routes.get(request.url.path)
        if not scripts:
            return problem(404, "not-found", f"{self.name} has no script for {request.url.path}")
        script = scripts.pop(0) if len(scripts) > 1 else scripts[0]
        answer = script(request) if callable(script) else script
        if answer.delay:
            await asyncio.sleep(answer.delay)
        if isinstance(answer.response, Exception):
            raise answer.response
        return answer.response


def ok(body: Any, delay: float = 0.0) -> Answer:
    return Answer(httpx.Response(200, json=body), delay)


def problem(
    status: int, slug: str, detail: str = "", headers: dict[str, str] | None = None
) -> httpx.Response:
    body = {"type": PROBLEMS + slug, "title": slug.replace("-", " ").capitalize(), "status": status}
    if detail:
        body["detail"] = detail
    return httpx.Response(
        status, json=body, headers={**(headers or {}), "Content-Type": "application/problem+json"}
    )


def failing(status: int, slug: str, *, retry_after: int | None = None) -> Answer:
    headers = {} if retry_after is None else {"Retry-After": str(retry_after)}
    return Answer(problem(status, slug, headers=headers))


def refused() -> Answer:
    return Answer(httpx.ConnectError("connection refused"))


def account(user_id: uuid.UUID, *roles: str, status: str = "active") -> dict[str, Any]:
    return {
        "id": str(user_id),
        "email": "ada@example.com",
        "emailVerified": True,
        "roles": list(roles or ("user",)),
        "status": status,
        "createdAt": "2026-11-25T10:00:00Z",
    }


def profile(user_id: uuid.UUID) -> dict[str, Any]:
    return {
        "id": str(user_id),
        "email": "ada@example.com",
        "displayName": "Ada Lovelace",
        "firstName": "Ada",
        "lastName": "Lovelace",
        "phone": "+447700900123",
        "status": "active",
        "createdAt": "2026-11-25T10:00:01Z",
        "updatedAt": "2026-11-25T10:20:00Z",
    }


def addresses(user_id: uuid.UUID) -> dict[str, Any]:
    return {
        "items": [
            {
                "id": str(uuid.uuid4()),
                "userId": str(user_id),
                "label": "Home",
                "line1": "12 St James's Square",
                "line2": None,
                "city": "London",
                "region": None,
                "postalCode": "SW1Y 4JH",
                "country": "GB",
                "createdAt": "2026-11-25T10:30:00Z",
                "updatedAt": "2026-11-25T10:30:00Z",
            }
        ]
    }


def me_paths(user_id: uuid.UUID) -> tuple[str, str, str]:
    """The paths of `getCurrentAccount`, `getUserProfile` and `listAddresses`."""
    return "/api/v1/auth/me", f"/api/v1/users/{user_id}", f"/api/v1/users/{user_id}/addresses"


@dataclass
class Confirming:
    """How long the auth service takes to confirm an admin's role."""

    delay: float = 0.0


@dataclass
class Gateway:
    """The running gateway, an HTTP client on it, and its scripted downstreams."""

    http: httpx.AsyncClient
    auth: Downstream
    user: Downstream
    tokens: Tokens
    roles: dict[uuid.UUID, frozenset[str]]
    confirming: Confirming

    def headers(self, user_id: uuid.UUID, roles: Iterable[str] = ("user",)) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens.issue(user_id, roles)}"}

    def everything_for(self, user_id: uuid.UUID, *roles: str) -> None:
        """Both services answer every call of `getMyOverview` for this user at once."""
        me, profile_path, addresses_path = me_paths(user_id)
        self.auth.on(me, ok(account(user_id, *roles)))
        self.user.on(profile_path, ok(profile(user_id)))
        self.user.on(addresses_path, ok(addresses(user_id)))


FAST: dict[str, Any] = {
    "call_timeout_seconds": 0.5,
    "call_retries": 1,
    "part_timeout_seconds": 1.0,
    "deadline_seconds": 1.5,
    "unavailable_retry_after_seconds": 5,
}

# Real services on a busy machine: deadlines no healthy answer misses.
GENEROUS: dict[str, Any] = {
    **FAST,
    "call_timeout_seconds": 2.0,
    "part_timeout_seconds": 3.0,
    "deadline_seconds": 4.0,
}


@pytest.fixture
def tokens() -> Tokens:
    return Tokens()


@asynccontextmanager
async def gateway(tokens: Tokens, **overrides: Any) -> AsyncIterator[Gateway]:
    """The gateway (lifespan included) over scripted services, with `FAST` deadlines unless
    `overrides` say otherwise; the auth service confirms the roles in `Gateway.roles`."""
    settings = Settings(**{**FAST, **overrides})
    auth, user = Downstream("the auth service"), Downstream("the user service")
    roles: dict[uuid.UUID, frozenset[str]] = {}
    confirming = Confirming()

    async def confirmed(user_id: uuid.UUID) -> frozenset[str] | None:
        await asyncio.sleep(confirming.delay)
        return roles.get(user_id)

    auth_http = httpx.AsyncClient(transport=httpx.MockTransport(auth), base_url="http://auth")
    user_http = httpx.AsyncClient(transport=httpx.MockTransport(user), base_url="http://user")

    async def reachable() -> bool:
        try:
            return (await AuthServiceClient(auth_http).get_liveness()).status == "ok"
        except Exception:
            return False

    adapters = Adapters(
        authenticator=ContractAuthenticator(tokens.verifier(), ConfirmedRoles(confirmed)),
        auth=AuthServiceClient(auth_http),
        user=UserServiceClient(user_http),
        auth_reachable=reachable,
    )
    app = create_app(settings, adapters=adapters)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as http:
            yield Gateway(http, auth, user, tokens, roles, confirming)
    await auth_http.aclose()
    await user_http.aclose()


@pytest.fixture
async def running(tokens: Tokens) -> AsyncIterator[Gateway]:
    async with gateway(tokens) as started:
        yield started
