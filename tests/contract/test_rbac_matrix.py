"""The RBAC matrix of every registered service, derived from its contract: for every operation and
every kind of caller, the outcome the operation's `security` requirement (and its
`x-owner-parameter`) promises, checked against the service running in-process.

The contracts' rules: `security: []` is public; each requirement in the list is an alternative;
in a requirement, every scheme must be satisfied, and the list a bearer scheme names holds the
roles the token must carry; `x-owner-parameter: userId` also lets in the user whose id is that
path parameter. A caller who satisfies no requirement gets 401 (problem type
`unauthenticated`) unless it presented a valid credential of a scheme the operation accepts,
then 403 (`forbidden`). Anything else is "allowed": the answer is about the request, not the
caller (404 for an unknown id, 401 `invalid-credentials` for a wrong password at login).
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
import yaml
from fastapi import FastAPI
from pydantic import SecretStr

from harness.project import Project
from services.auth.app import create_app as create_auth_app
from services.auth.grants import grant_role
from services.auth.settings import Settings as AuthSettings
from services.gateway.app import create_app as create_gateway_app
from services.kit.events import encode
from services.kit.memory import InMemoryBroker, InMemoryEventConsumer
from services.kit.topology import QueueSpec
from services.notification.app import Adapters as NotificationAdapters
from services.notification.app import create_app as create_notification_app
from services.notification.mail import RecordingEmailSender
from services.notification.roles import StaticRoleDirectory
from services.notification.storage import SqlNotificationDatabase
from services.user.app import Adapters as UserAdapters
from services.user.app import create_app as create_user_app
from services.user.roles import InMemoryRolesClient
from services.user.storage import SqlUserStore
from tests import factories
from tests.conftest import REPOSITORY
from tests.contract.served import Backends, composed_from
from tests.notification.support import Tokens as NotificationTokens
from tests.notification.support import settings_for as notification_settings
from tests.user.conftest import ADMIN_ROLES, FAST, HOME, user_settings
from tests.user.conftest import Tokens as UserTokens

pytestmark = pytest.mark.contract

SERVICES = tuple(entry.name for entry in Project.load(REPOSITORY).services)
# The problem types every contract's table gives for a refused caller.
UNAUTHENTICATED = "https://accord.example/problems/unauthenticated"
FORBIDDEN = "https://accord.example/problems/forbidden"
ALLOWED = "allowed"
METHODS = ("get", "put", "post", "delete", "patch")
PASSWORD = "correct-horse-battery-staple"
API_KEY = "rbac-matrix-service-credential"


# --- the contracts ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Scheme:
    """A security scheme: `http` bearer, or an API key in a header."""

    kind: str
    header: str


@dataclass(frozen=True)
class Operation:
    """What the matrix needs of one operation of a contract."""

    service: str
    operation_id: str
    method: str
    path: str
    # Alternatives; each maps a scheme name to the roles it requires. Empty: public.
    security: tuple[tuple[tuple[str, frozenset[str]], ...], ...]
    owner_parameter: str | None
    path_parameters: tuple[str, ...]
    body: Any
    schemes: tuple[tuple[str, Scheme], ...]

    def scheme(self, name: str) -> Scheme:
        return dict(self.schemes)[name]


def _resolve(document: dict[str, Any], node: Any) -> Any:
    """Follows local `$ref`s (`#/components/...`)."""
    while isinstance(node, dict) and "$ref" in node:
        reference: str = node["$ref"]
        assert reference.startswith("#/"), f"only local references are expected: {reference}"
        target: Any = document
        for part in reference[2:].split("/"):
            target = target[part.replace("~1", "/").replace("~0", "~")]
        node = target
    return node


def _example_body(document: dict[str, Any], operation: dict[str, Any]) -> Any:
    """The request body's example in the contract (so refusals are about the caller)."""
    body = _resolve(document, operation.get("requestBody"))
    if body is None:
        return None
    media = body["content"]["application/json"]
    if "example" in media:
        return media["example"]
    first = next(iter(media["examples"].values()))
    return _resolve(document, first)["value"]


def _schemes(document: dict[str, Any]) -> tuple[tuple[str, Scheme], ...]:
    found = []
    for name, scheme in document.get("components", {}).get("securitySchemes", {}).items():
        if scheme["type"] == "http" and scheme["scheme"].lower() == "bearer":
            found.append((name, Scheme("bearer", "Authorization")))
        elif scheme["type"] == "apiKey" and scheme["in"] == "header":
            found.append((name, Scheme("api-key", scheme["name"])))
        else:
            raise AssertionError(f"the matrix does not know the security scheme {scheme}")
    return tuple(found)


def contract_operations(service: str) -> list[Operation]:
    """Every operation of `contracts/openapi/<service>-service.yaml`."""
    path = REPOSITORY / "contracts" / "openapi" / f"{service}-service.yaml"
    document: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
    schemes = _schemes(document)
    operations = []
    for template, item in document["paths"].items():
        for method in METHODS:
            if method not in item:
                continue
            operation = item[method]
            parameters = [
                _resolve(document, parameter)
                for parameter in [*item.get("parameters", []), *operation.get("parameters", [])]
            ]
            # An operation without `security` takes the document's; without either, it is public.
            requirements = operation.get("security", document.get("security", []))
            operations.append(
                Operation(
                    service=service,
                    operation_id=operation["operationId"],
                    method=method.upper(),
                    path=template,
                    security=tuple(
                        tuple((name, frozenset(roles)) for name, roles in requirement.items())
                        for requirement in requirements
                    ),
                    owner_parameter=operation.get("x-owner-parameter"),
                    path_parameters=tuple(p["name"] for p in parameters if p["in"] == "path"),
                    body=_example_body(document, operation),
                    schemes=schemes,
                )
            )
    return operations


# --- the callers and what the contract promises them ---------------------------------------


@dataclass(frozen=True)
class Caller:
    """Who calls: the credentials presented, and whether the token's `sub` is the path's user."""

    name: str
    roles: frozenset[str] | None = None  # a valid access token's roles; None: no token
    owner: bool = False
    api_key: bool = False


ANONYMOUS = Caller("anonymous")
OWNER = Caller("owner", roles=frozenset({"user"}), owner=True)
NON_OWNER = Caller("non-owner", roles=frozenset({"user"}))
USER = Caller("user", roles=frozenset({"user"}))
ADMIN = Caller("admin", roles=frozenset({"user", "admin"}))
SERVICE = Caller("service-api-key", api_key=True)


def callers(operation: Operation) -> list[Caller]:
    """Anonymous and an admin always; the path's user and another user where the path names a
    user (a plain user elsewhere); the service credential where the contract has one."""
    names_a_user = (operation.owner_parameter or "userId") in operation.path_parameters
    found = [ANONYMOUS, *((OWNER, NON_OWNER) if names_a_user else (USER,)), ADMIN]
    if any(scheme.kind == "api-key" for _, scheme in operation.schemes):
        found.append(SERVICE)
    return found


def _satisfies(operation: Operation, caller: Caller, name: str, roles: frozenset[str]) -> bool:
    if operation.scheme(name).kind == "api-key":
        return caller.api_key
    if caller.roles is None:
        return False
    return roles <= caller.roles or (operation.owner_parameter is not None and caller.owner)


def _presents(operation: Operation, caller: Caller, name: str) -> bool:
    if operation.scheme(name).kind == "api-key":
        return caller.api_key
    return caller.roles is not None


def expected(operation: Operation, caller: Caller) -> str:
    """The outcome the contract promises `caller` for `operation`."""
    if not operation.security:
        return ALLOWED
    for requirement in operation.security:
        if all(_satisfies(operation, caller, name, roles) for name, roles in requirement):
            return ALLOWED
    accepted = {name for requirement in operation.security for name, _ in requirement}
    if any(_presents(operation, caller, name) for name in accepted):
        return "403"
    return "401"


def outcome(response: httpx.Response) -> str:
    """What the answer says of the caller: refused as unauthenticated (401), as lacking the
    role (403), or neither."""
    if response.status_code in (401, 403) and "json" in response.headers.get("content-type", ""):
        kind = response.json().get("type")
        if response.status_code == 401 and kind == UNAUTHENTICATED:
            return "401"
        if response.status_code == 403 and kind == FORBIDDEN:
            return "403"
    return ALLOWED


MATRIX = [
    pytest.param(
        operation,
        caller,
        id=f"{service}-{operation.operation_id}-{caller.name}",
        marks=pytest.mark.conformance(service, "rbac"),
    )
    for service in SERVICES
    for operation in contract_operations(service)
    for caller in callers(operation)
]


# --- the running services --------------------------------------------------------------------


@dataclass(frozen=True)
class Subject:
    """The resources a test acts on, and each caller's headers."""

    path_parameters: dict[str, str]
    headers: dict[str, dict[str, str]]


@dataclass
class RunningService:
    """A client of the running service, and a way to make a fresh subject."""

    client: httpx.Client
    subject: Callable[[], Subject]


@contextmanager
def served(app: FastAPI) -> Iterator[httpx.Client]:
    """`app` served by uvicorn on a free port of 127.0.0.1, lifespan included (in a thread of
    its own), and a client of it."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    # Small request and answer segments go out at once (no Nagle/delayed-ACK pause per call).
    listener.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(app, lifespan="on", log_level="warning", access_log=False)
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise AssertionError("uvicorn did not start serving (see the log above)")
            time.sleep(0.01)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}") as client:
            yield client
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        listener.close()


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="module")
def auth(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningService]:
    """The auth service with an admin and a user; each subject is a freshly registered user."""
    directory: Path = tmp_path_factory.mktemp("rbac-auth")
    settings = AuthSettings(
        environment="local",
        database_url=f"sqlite:///{directory / 'auth.db'}",
        signing_key_path=directory / "signing-key.pem",
        service_api_key=SecretStr(API_KEY),
        argon2_time_cost=1,
        argon2_memory_cost_kib=1024,
        argon2_parallelism=1,
        password_hash_nice=0,
        registrations_per_address=100_000,
        login_failures_per_address=100_000,
        login_failures_per_account_address=100_000,
        reset_requests_per_address=100_000,
    )
    with served(create_auth_app(settings)) as client:

        def register() -> dict[str, Any]:
            email = f"rbac-{uuid.uuid4().hex[:12]}@example.com"
            answer = client.post(
                "/api/v1/auth/register", json={"email": email, "password": PASSWORD}
            )
            assert answer.status_code == 201, answer.text
            return {**answer.json(), "email": email}

        admin = register()
        asyncio.run(grant_role(settings.database_url, admin["email"], "admin"))
        login = client.post(
            "/api/v1/auth/login", json={"email": admin["email"], "password": PASSWORD}
        )
        assert login.status_code == 200, login.text
        admin_token = login.json()["accessToken"]

        # Refused whatever it asks, so one for the module.
        other = register()

        def subject() -> Subject:
            owner = register()
            return Subject(
                {"userId": owner["userId"]},
                {
                    ANONYMOUS.name: {},
                    OWNER.name: _bearer(owner["accessToken"]),
                    USER.name: _bearer(owner["accessToken"]),
                    NON_OWNER.name: _bearer(other["accessToken"]),
                    ADMIN.name: _bearer(admin_token),
                    SERVICE.name: {"X-API-Key": API_KEY},
                },
            )

        yield RunningService(client, subject)


@pytest.fixture(scope="module")
def user(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningService]:
    """The user service, admins confirmed by an in-memory roles table; each subject is a user
    whose profile has been created from `user.created`, with one address."""
    database_url = f"sqlite:///{tmp_path_factory.mktemp('rbac-user') / 'user.db'}"
    tokens, admin_id = UserTokens(), uuid.uuid4()
    roles = InMemoryRolesClient({admin_id: ADMIN_ROLES})
    broker, queue = InMemoryBroker(), "rbac-user-service"
    broker.create_queue(QueueSpec(queue))
    adapters = UserAdapters(
        store=SqlUserStore(database_url),
        verifier=tokens.verifier(),
        roles=roles,
        consumer=InMemoryEventConsumer(broker, queue, FAST),
    )
    app = create_user_app(user_settings(database_url, queue=queue), adapters=adapters)
    with served(app) as client:

        def subject() -> Subject:
            owner = uuid.uuid4()
            roles.set(owner, ["user"])
            broker.send(queue, encode(factories.user_created(owner, email=f"{owner}@example.com")))
            deadline = time.monotonic() + 10
            while broker.depth(queue) and time.monotonic() < deadline:
                time.sleep(0.005)
            created = client.post(
                f"/api/v1/users/{owner}/addresses", json=dict(HOME), headers=tokens.headers(owner)
            )
            assert created.status_code == 201, created.text
            return Subject(
                {"userId": str(owner), "addressId": created.json()["id"]},
                {
                    ANONYMOUS.name: {},
                    OWNER.name: tokens.headers(owner),
                    USER.name: tokens.headers(owner),
                    NON_OWNER.name: tokens.headers(uuid.uuid4()),
                    ADMIN.name: tokens.headers(admin_id, ADMIN_ROLES),
                },
            )

        yield RunningService(client, subject)


@pytest.fixture(scope="module")
def notification(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningService]:
    """The notification service, admins confirmed by a static role directory."""
    database_url = f"sqlite:///{tmp_path_factory.mktemp('rbac-notification') / 'log.db'}"
    tokens = NotificationTokens()
    app = create_notification_app(
        notification_settings(database_url),
        adapters=NotificationAdapters(
            database=SqlNotificationDatabase(database_url),
            sender=RecordingEmailSender(),
            tokens=tokens.verifier(),
            roles=StaticRoleDirectory({tokens.admin_id: frozenset({"user", "admin"})}),
            consumer=None,
        ),
    )
    with served(app) as client:

        def subject() -> Subject:
            return Subject(
                {},
                {
                    ANONYMOUS.name: {},
                    USER.name: _bearer(tokens.user()),
                    ADMIN.name: _bearer(tokens.admin()),
                },
            )

        yield RunningService(client, subject)


@pytest.fixture(scope="module")
def gateway_stack(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Backends, RunningService]]:
    """The gateway in front of the real auth and user services (each on a port); each subject
    is a freshly registered user whose profile the user service has made, with an address."""
    directory: Path = tmp_path_factory.mktemp("rbac-gateway")
    with composed_from(f"sqlite:///{directory / 'auth.db'}", directory) as backends:
        other = backends.register()
        with served(create_gateway_app(backends.gateway_settings())) as client:

            def subject() -> Subject:
                owner = backends.with_profile(backends.register())
                return Subject(
                    {"userId": owner["userId"]},
                    {
                        ANONYMOUS.name: {},
                        OWNER.name: _bearer(owner["accessToken"]),
                        USER.name: _bearer(owner["accessToken"]),
                        NON_OWNER.name: _bearer(other["accessToken"]),
                        ADMIN.name: {"Authorization": backends.admin},
                    },
                )

            yield backends, RunningService(client, subject)


@pytest.fixture(scope="module")
def gateway(gateway_stack: tuple[Backends, RunningService]) -> RunningService:
    return gateway_stack[1]


# --- the matrix ------------------------------------------------------------------------------


@pytest.mark.parametrize(("operation", "caller"), MATRIX)
def test_each_caller_is_let_in_or_refused_as_the_contract_states(
    operation: Operation, caller: Caller, request: pytest.FixtureRequest
) -> None:
    service: RunningService = request.getfixturevalue(operation.service)
    subject = service.subject()
    path = operation.path.format(
        **{name: subject.path_parameters[name] for name in operation.path_parameters}
    )

    response = service.client.request(
        operation.method, path, json=operation.body, headers=subject.headers[caller.name]
    )

    assert outcome(response) == expected(operation, caller), (
        f"{operation.method} {path} as {caller.name}: {response.status_code} {response.text}"
    )


# --- a caller whose account is gone ----------------------------------------------------------


@pytest.mark.conformance("gateway", "rbac")
def test_the_gateway_refuses_a_deactivated_accounts_token_on_an_overview_that_needs_ownership(
    gateway_stack: tuple[Backends, RunningService],
) -> None:
    # The token still verifies (it has not expired) and its holder is the path's owner; but
    # the account is deactivated, and a deactivated account's token is answered with 401 on
    # every operation that requires a role or ownership (the auth contract's "Authorization").
    backends, gateway = gateway_stack
    user = backends.deactivated()

    response = gateway.client.get(
        f"/api/v1/users/{user['userId']}/overview", headers=_bearer(user["accessToken"])
    )

    assert response.status_code == 401, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"] == UNAUTHENTICATED
    assert response.headers["www-authenticate"].startswith("Bearer")


@pytest.mark.conformance("gateway", "rbac")
def test_a_deactivated_account_reads_its_own_overview_as_deactivated(
    gateway_stack: tuple[Backends, RunningService],
) -> None:
    # `getMyOverview` needs no role nor ownership, and the auth service answers
    # `getCurrentAccount` for a deactivated account's token (200, `status: deactivated`), so the
    # account is not "gone" and the gateway answers 200 (its contract's 401 is for an account
    # the auth service refuses).
    backends, gateway = gateway_stack
    user = backends.deactivated()

    response = gateway.client.get("/api/v1/me", headers=_bearer(user["accessToken"]))

    assert response.status_code == 200, response.text
    assert response.json()["account"]["status"] == "deactivated"
