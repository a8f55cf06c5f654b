"""The schemathesis and RBAC layers can fail: each test breaks the user service on purpose and
checks that the layer notices, for that reason and no other.

- schemathesis: the contract loaded and checked as `tests/contract/schemathesis/` does it
  (`load_contract`, `as_caller`, `call_and_validate`, `run_stateful`), with a fault between
  the service and schemathesis. The same request passes through the service unbroken first,
  so the failure is the fault's.
- RBAC: the matrix of `tests/contract/test_rbac_matrix.py` (its cases, its expectations and its
  check, unchanged) run against a service whose authorization is broken; the check must report
  exactly the cases whose promise the fault breaks.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FunctionType
from typing import Any, cast

import pytest
from fastapi import FastAPI
from schemathesis.core.failures import Failure, FailureGroup, ServerError
from schemathesis.openapi.checks import (
    EnsureResourceAvailability,
    JsonSchemaError,
    UndefinedStatusCode,
)
from schemathesis.python import asgi
from schemathesis.specs.openapi.schemas import OpenApiSchema
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.types import Message as AsgiMessage

from generated import security as contract
from generated.security import Authenticator, Requirement, Security
from services.kit.events import encode
from services.kit.memory import InMemoryBroker, InMemoryEventConsumer
from services.kit.security import BEARER
from services.kit.topology import QueueSpec
from services.user.app import Adapters, create_app
from services.user.roles import InMemoryRolesClient
from services.user.storage import SqlUserStore
from tests import factories
from tests.contract.schemathesis.support import (
    CALLERS_CREDENTIAL,
    Credential,
    RecordProperty,
    ServiceSlot,
    as_caller,
    load_contract,
    run_stateful,
)
from tests.contract.test_rbac_matrix import (
    ADMIN,
    ANONYMOUS,
    MATRIX,
    NON_OWNER,
    OWNER,
    USER,
    Caller,
    Operation,
    RunningService,
    Subject,
    expected,
    served,
)
from tests.contract.test_rbac_matrix import (
    test_each_caller_is_let_in_or_refused_as_the_contract_states as matrix_check,
)
from tests.contract.test_routes_match_contracts import api_routes
from tests.user.conftest import ADMIN_ROLES, FAST, HOME, Tokens, user_settings

pytestmark = pytest.mark.contract

SCHEMATHESIS = pytest.mark.conformance("user", "schemathesis")
RBAC = pytest.mark.conformance("user", "rbac")

USERS = "/api/v1/users"
UUID = "[0-9a-f-]{36}"
UNAUTHENTICATED = "https://accord.example/problems/unauthenticated"
FORBIDDEN = "https://accord.example/problems/forbidden"


# --- faults ----------------------------------------------------------------------------------

# An answer's status and JSON body (None: no body), as a faulty service would give them.
Rewrite = Callable[[int, Any], tuple[int, Any]]


class Rewriting:
    """ASGI middleware: the app, but its answers to one method and path pass through `rewrite`,
    as from a service with that bug."""

    def __init__(self, app: ASGIApp, method: str, path: str, rewrite: Rewrite) -> None:
        self.app = app
        self.method = re.compile(method)
        self.path = re.compile(path)
        self.rewrite = rewrite

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or not self.method.fullmatch(scope["method"])
            or not self.path.fullmatch(scope["path"])
        ):
            await self.app(scope, receive, send)
            return
        start: AsgiMessage = {}
        chunks: list[bytes] = []

        async def rewrite(message: AsgiMessage) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                start = message
                return
            chunks.append(message.get("body", b""))
            if message.get("more_body", False):
                return
            raw = b"".join(chunks)
            try:
                document = json.loads(raw) if raw else None
            except ValueError:  # not JSON: it goes as it was
                await send(start)
                await send({"type": "http.response.body", "body": raw})
                return
            status, document = self.rewrite(start["status"], document)
            body = b"" if document is None else json.dumps(document).encode()
            headers = [(k, v) for k, v in start["headers"] if k.lower() != b"content-length"]
            headers.append((b"content-length", str(len(body)).encode()))
            await send({**start, "status": status, "headers": headers})
            await send({"type": "http.response.body", "body": body})

        await self.app(scope, receive, rewrite)


def without(member: str) -> Rewrite:
    """A JSON object answered without `member`."""

    def rewrite(status: int, document: Any) -> tuple[int, Any]:
        if isinstance(document, dict):
            return status, {key: value for key, value in document.items() if key != member}
        return status, document

    return rewrite


def crashing(status: int, document: Any) -> tuple[int, Any]:
    """Whatever the service meant to answer, a 500."""
    return 500, {"title": "Internal Server Error", "status": 500}


def created_as_ok(status: int, document: Any) -> tuple[int, Any]:
    """A 201 answered as 200, which the contract does not document for creations."""
    return (200 if status == 201 else status), document


def with_a_new_id(status: int, document: Any) -> tuple[int, Any]:
    """A created resource answered with an `id` it does not have (a link to nowhere)."""
    if status == 201 and isinstance(document, dict):
        return status, {**document, "id": str(uuid.uuid4())}
    return status, document


# --- schemathesis over a user service that can be broken -------------------------------------


@dataclass
class BreakableService:
    """The user service behind the slot schemathesis calls, the contract loaded as the suite
    loads it, and a user with an address."""

    schema: OpenApiSchema
    slot: ServiceSlot
    app: FastAPI
    tokens: Tokens
    user: uuid.UUID
    address: str

    def credential(self) -> Credential:
        """The owner's: every user id the stateful phase generates is steered to the owner."""
        header = self.tokens.headers(self.user)["Authorization"]
        return lambda case: header

    @contextmanager
    def broken(self, method: str, path: str, rewrite: Rewrite) -> Iterator[None]:
        """The service with the fault while the block runs (its lifespan is the slot's, so the
        service is not started again)."""
        self.slot.app = Rewriting(self.app, method, path, rewrite)
        try:
            yield
        finally:
            self.slot.app = self.app

    def failures(self, case: Any) -> list[Failure]:
        """What `call_and_validate` reports for the case, as the owner (nothing if it passes)."""
        with as_caller(case, self.credential()):
            try:
                case.call_and_validate()
            except FailureGroup as group:
                return [failure for failure in group.exceptions if isinstance(failure, Failure)]
        return []


@pytest.fixture(scope="module")
def user_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BreakableService]:
    """The user service, running in schemathesis's ASGI event loop, with a user and an
    address."""
    directory: Path = tmp_path_factory.mktemp("user-layers-can-fail")
    database_url = f"sqlite:///{directory / 'user.db'}"
    tokens, user = Tokens(), uuid.uuid4()
    broker, queue = InMemoryBroker(), "layers-can-fail-user-service"
    broker.create_queue(QueueSpec(queue))
    adapters = Adapters(
        store=SqlUserStore(database_url),
        verifier=tokens.verifier(),
        roles=InMemoryRolesClient({user: ["user"]}),
        consumer=InMemoryEventConsumer(broker, queue, FAST),
    )
    app = create_app(user_settings(database_url, queue=queue), adapters=adapters)
    slot = ServiceSlot("user")
    slot.app = app
    schema = load_contract("user")
    schema.app = slot
    # The failures provoked here are not stored in the example database the suites use (this
    # schema's configuration is its own).
    schema.config.generation.update(database="none")

    @schema.hook
    def map_path_parameters(context: Any, path_parameters: dict[str, Any] | None) -> Any:
        """Every generated user id that is a UUID becomes the user's, so scenarios create and
        read addresses instead of meeting 404s."""
        if not path_parameters or "userId" not in path_parameters:
            return path_parameters
        try:
            uuid.UUID(str(path_parameters["userId"]))
        except ValueError:
            return path_parameters
        return {**path_parameters, "userId": str(user)}

    with asgi.get_client(slot) as client:  # starts the app's lifespan (migrations, consumer)
        broker.send(queue, encode(factories.user_created(user, email="ada@example.com")))
        deadline = time.monotonic() + 10
        while broker.depth(queue) and time.monotonic() < deadline:
            time.sleep(0.01)
        created = client.post(
            f"{USERS}/{user}/addresses", json=dict(HOME), headers=tokens.headers(user)
        )
        assert created.status_code == 201, created.text
    yield BreakableService(schema, slot, app, tokens, user, created.json()["id"])
    asgi.shutdown_lifespans()
    slot.app = None


def case_of(service: BreakableService, operation_id: str, **parts: Any) -> Any:
    """A case of the operation with the user (and the address) in its path, naming the
    caller's credential as the suite's cases do."""
    operation = service.schema.find_operation_by_id(operation_id)
    path_parameters = {"userId": str(service.user), "addressId": service.address}
    return operation.Case(
        path_parameters={
            name: value
            for name, value in path_parameters.items()
            if f"{{{name}}}" in operation.path
        },
        headers={"Authorization": CALLERS_CREDENTIAL},
        **parts,
    )


def checks_of(failures: list[Failure]) -> list[tuple[str, ...]]:
    """The checks each failure can come from, as schemathesis names them."""
    return sorted(failure.checks for failure in failures)


@SCHEMATHESIS
def test_schemathesis_reports_a_response_missing_a_required_property(
    user_service: BreakableService, record_property: RecordProperty
) -> None:
    case = case_of(user_service, "getUserProfile")

    with user_service.slot.counting(record_property):
        assert user_service.failures(case) == [], "the profile fails without the fault"
        with user_service.broken("GET", f"{USERS}/{UUID}", without("email")):
            failures = user_service.failures(case)

    assert checks_of(failures) == [("response_schema_conformance", "response_headers_conformance")]
    (failure,) = failures
    assert isinstance(failure, JsonSchemaError)
    assert failure.validation_message == '"email" is a required property'
    # The body's schema, not a header's.
    assert "Validated against the response schema for status code 200" in failure.message


@SCHEMATHESIS
def test_schemathesis_reports_an_operation_that_answers_500(
    user_service: BreakableService, record_property: RecordProperty
) -> None:
    case = case_of(user_service, "listAddresses")

    with user_service.slot.counting(record_property):
        assert user_service.failures(case) == [], "the addresses fail without the fault"
        with user_service.broken("GET", f"{USERS}/{UUID}/addresses", crashing):
            failures = user_service.failures(case)

    # The contract documents no 500 either, so status_code_conformance fails too.
    assert checks_of(failures) == [("not_a_server_error",), ("status_code_conformance",)]
    assert {type(failure) for failure in failures} == {ServerError, UndefinedStatusCode}
    assert all(getattr(failure, "status_code", None) == 500 for failure in failures)


@SCHEMATHESIS
def test_schemathesis_reports_a_status_the_contract_does_not_document(
    user_service: BreakableService, record_property: RecordProperty
) -> None:
    case = case_of(user_service, "createAddress", body=dict(HOME))

    with user_service.slot.counting(record_property):
        assert user_service.failures(case) == [], "a creation fails without the fault"
        with user_service.broken("POST", f"{USERS}/{UUID}/addresses", created_as_ok):
            failures = user_service.failures(case)

    assert checks_of(failures) == [("status_code_conformance",)]
    (failure,) = failures
    assert isinstance(failure, UndefinedStatusCode)
    assert failure.status_code == 200
    assert "201" in failure.defined_status_codes


@SCHEMATHESIS
def test_schemathesis_stateful_phase_reports_a_link_to_a_resource_that_does_not_exist(
    user_service: BreakableService, record_property: RecordProperty
) -> None:
    with user_service.slot.counting(record_property):
        followed = run_stateful(user_service.schema, user_service.credential())
        assert followed, "no scenario followed a link without the fault"
        with (
            user_service.broken("POST", f"{USERS}/{UUID}/addresses", with_a_new_id),
            pytest.raises(FailureGroup) as raised,
        ):
            run_stateful(user_service.schema, user_service.credential())

    failures = [failure for failure in raised.value.exceptions if isinstance(failure, Failure)]
    assert checks_of(failures) == [("ensure_resource_availability",)]
    (failure,) = failures
    assert isinstance(failure, EnsureResourceAvailability)
    assert failure.created_with == f"POST {USERS}/{{userId}}/addresses"
    # Whichever of the creation's links the scenario followed.
    assert failure.not_available_with in {
        f"{method} {USERS}/{{userId}}/addresses/{{addressId}}"
        for method in ("GET", "PATCH", "DELETE")
    }


# --- the RBAC matrix over a user service whose authorization is broken -----------------------

USER_MATRIX: list[tuple[Operation, Caller]] = [
    cast("tuple[Operation, Caller]", tuple(case.values))
    for case in MATRIX
    if cast("Operation", case.values[0]).service == "user"
]


def owner_check_dropped(app: FastAPI) -> FastAPI:
    """The app with `x-owner-parameter` forgotten: every operation open to the owner or an admin
    lets in any authenticated caller (the generated routes' admission asks the service's
    authenticator for a bearer token alone, in place of the operation's `security`)."""
    anyone = Security((Requirement(BEARER),))
    checks: dict[Callable[..., Any], Authenticator] = {}
    operations = set()
    for route, _ in api_routes(list(app.routes)):
        for dependency in route.dependant.dependencies:
            call = dependency.call
            if not isinstance(call, FunctionType):
                continue
            captured = [cell.cell_contents for cell in call.__closure__ or ()]
            security = [value for value in captured if isinstance(value, Security)]
            authenticators = [value for value in captured if hasattr(value, "authenticate")]
            if security and security[0].owner_parameter is not None:
                (checks[call],) = authenticators
                operations.add(route.operation_id)
    assert operations == {
        operation.operation_id for operation, _ in USER_MATRIX if operation.owner_parameter
    }, f"expected an owner check on each operation open to the owner, found {operations}"

    def admit_anyone(
        authenticator: Authenticator,
    ) -> Callable[[Request], Awaitable[contract.Caller]]:
        async def caller(request: Request) -> contract.Caller:
            return await authenticator.authenticate(request, anyone)

        return caller

    for check, authenticator in checks.items():
        app.dependency_overrides[check] = admit_anyone(authenticator)
    return app


def unauthenticated_as_forbidden(status: int, document: Any) -> tuple[int, Any]:
    """A caller without credentials told 403 `forbidden` where the contract promises 401."""
    if status == 401 and isinstance(document, dict) and document.get("type") == UNAUTHENTICATED:
        return 403, {**document, "type": FORBIDDEN, "title": "Forbidden", "status": 403}
    return status, document


def every_answer_of(rewrite: Rewrite) -> Callable[[FastAPI], ASGIApp]:
    """The fault of a service whose every answer passes through `rewrite`."""
    return lambda app: Rewriting(app, "GET|POST|PATCH|PUT|DELETE", ".*", rewrite)


class _Fixtures:
    """Stands in for the `request` of the matrix's test: the service it asks for is ours."""

    def __init__(self, service: RunningService) -> None:
        self.service = service

    def getfixturevalue(self, name: str) -> RunningService:
        assert name == "user", f"the matrix asked for the {name} service"
        return self.service


@contextmanager
def user_service_with(
    fault: Callable[[FastAPI], ASGIApp], directory: Path
) -> Iterator[RunningService]:
    """The user service with the fault, served as the matrix serves it; each subject is a user
    with a profile and an address, with the matrix's callers' headers. (The matrix's `user`
    fixture builds its app inline, so its wiring is repeated here; what the matrix expects and
    checks is not.)"""
    database_url = f"sqlite:///{directory / 'user.db'}"
    tokens, admin_id = Tokens(), uuid.uuid4()
    roles = InMemoryRolesClient({admin_id: ADMIN_ROLES})
    broker, queue = InMemoryBroker(), "layers-can-fail-rbac"
    broker.create_queue(QueueSpec(queue))
    adapters = Adapters(
        store=SqlUserStore(database_url),
        verifier=tokens.verifier(),
        roles=roles,
        consumer=InMemoryEventConsumer(broker, queue, FAST),
    )
    app = create_app(user_settings(database_url, queue=queue), adapters=adapters)
    # `served` takes a FastAPI app; a middleware is served the same way.
    with served(cast("FastAPI", fault(app))) as client:

        def subject() -> Subject:
            owner = uuid.uuid4()
            roles.set(owner, ["user"])
            broker.send(queue, encode(factories.user_created(owner, email=f"{owner}@example.com")))
            deadline = time.monotonic() + 10
            while broker.depth(queue) and time.monotonic() < deadline:
                time.sleep(0.005)
            created = client.post(
                f"{USERS}/{owner}/addresses", json=dict(HOME), headers=tokens.headers(owner)
            )
            assert created.status_code == 201, created.text
            return Subject(
                {"userId": str(owner), "addressId": created.json()["id"]},
                {
                    ANONYMOUS.name: {},
                    OWNER.name: tokens.headers(owner),
                    NON_OWNER.name: tokens.headers(uuid.uuid4()),
                    USER.name: tokens.headers(owner),
                    ADMIN.name: tokens.headers(admin_id, ADMIN_ROLES),
                },
            )

        yield RunningService(client, subject)


def mismatches(service: RunningService) -> set[tuple[str, str]]:
    """The matrix's cases of the user service whose check fails: (operation, caller)."""
    request = cast("pytest.FixtureRequest", _Fixtures(service))
    failed = set()
    for operation, caller in USER_MATRIX:
        try:
            matrix_check(operation, caller, request)
        except AssertionError:
            failed.add((operation.operation_id, caller.name))
    return failed


def promised(outcome: str) -> set[tuple[str, str]]:
    """The matrix's cases of the user service whose contract promises `outcome`."""
    return {
        (operation.operation_id, caller.name)
        for operation, caller in USER_MATRIX
        if expected(operation, caller) == outcome
    }


@RBAC
def test_the_rbac_matrix_reports_a_non_owner_let_in_to_each_operation_open_to_the_owner(
    tmp_path: Path, record_property: RecordProperty
) -> None:
    with user_service_with(owner_check_dropped, tmp_path) as service:
        failed = mismatches(service)

    open_to_the_owner = {
        operation.operation_id for operation, _ in USER_MATRIX if operation.owner_parameter
    }
    assert open_to_the_owner, "no operation is open to its owner: this proves nothing"
    # listUsers is admin-only without an owner parameter: a plain user is still refused there.
    assert failed == {(operation_id, NON_OWNER.name) for operation_id in open_to_the_owner}
    assert failed <= promised("403")
    record_property("cases", len(USER_MATRIX))


@RBAC
def test_the_rbac_matrix_reports_a_caller_without_credentials_told_403_instead_of_401(
    tmp_path: Path, record_property: RecordProperty
) -> None:
    with user_service_with(every_answer_of(unauthenticated_as_forbidden), tmp_path) as service:
        failed = mismatches(service)

    assert promised("401"), "the contract promises no 401: this proves nothing"
    assert failed == promised("401")
    assert {caller for _, caller in failed} == {ANONYMOUS.name}
    record_property("cases", len(USER_MATRIX))
