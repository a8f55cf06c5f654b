"""`accord generate` beyond the models: the routers, their security, the typed clients and the
event interfaces do what the contracts say, and regenerating follows a contract edit."""

from __future__ import annotations

import importlib.util
import json
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any, cast

import httpx
import mypy.api
import pytest
import yaml
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from starlette.requests import Request
from starlette.responses import Response
from typer.testing import CliRunner

from generated.auth import events as auth_events
from generated.auth import models as auth_models
from generated.auth import responses as auth_responses
from generated.auth import server as auth_server
from generated.events import catalog
from generated.events import models as events
from generated.notification import events as notification_events
from generated.notification import server as notification_server
from generated.security import Authenticator, Caller, Requirement, Security, current_request
from generated.user import client as user_client
from generated.user import events as user_events
from generated.user import models, responses
from generated.user import server as user_server
from harness.authoring import generate as generation
from harness.bus.provision import topology_from_contracts
from harness.cli import app as cli
from harness.project import Project

REPOSITORY = Path(__file__).resolve().parents[2]
METHODS = {"get", "put", "post", "delete", "patch"}
OWNER = uuid.UUID("6f1c1e0e-8f3e-4c1a-9d3e-2b7f4a6c9e10")
PENDING = uuid.UUID("00000000-0000-4000-8000-000000000001")
ADDRESS = uuid.UUID("4b5c6d7e-8f90-4a1b-9c2d-3e4f5a6b7c8d")
NOW = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
METRICS = "# TYPE accord_up gauge\naccord_up 1.0\n"
SERVERS: dict[str, ModuleType] = {
    "auth": auth_server,
    "user": user_server,
    "notification": notification_server,
}


def contract(service: str) -> dict[str, Any]:
    text = (REPOSITORY / f"contracts/openapi/{service}-service.yaml").read_text()
    return cast(dict[str, Any], yaml.safe_load(text))


def operations(service: str) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in contract(service)["paths"].items():
        for method, operation in item.items():
            if method in METHODS:
                yield method, path, operation


# --- fakes: an authenticator and a user service ------------------------------------------------


class RefusedError(Exception):
    """A problem the fakes answer with."""

    def __init__(self, status: int, title: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(title)
        self.status, self.title, self.headers = status, title, headers or {}


async def problem(request: Request, error: Exception) -> Response:
    assert isinstance(error, RefusedError)
    body = {"type": "about:blank", "title": error.title, "status": error.status, "detail": "no"}
    return JSONResponse(body, error.status, error.headers, media_type="application/problem+json")


class FakeAuthenticator:
    """Admits `Bearer good` as the owner with `admin`; refuses anything else with 401."""

    def __init__(self) -> None:
        self.seen: list[Security] = []

    async def authenticate(self, request: Request, security: Security) -> Caller:
        self.seen.append(security)
        if request.headers.get("authorization") != "Bearer good":
            raise RefusedError(401, "Unauthenticated")
        return Caller("bearerAuth", str(OWNER), frozenset({"admin"}), credential="good")


def profile(user_id: uuid.UUID) -> models.Profile:
    return models.Profile(
        id=user_id,
        email=None,
        displayName="Ada",
        firstName=None,
        lastName=None,
        phone=None,
        status=models.ProfileStatus.active,
        createdAt=NOW,
        updatedAt=NOW,
    )


def address(user_id: uuid.UUID) -> models.Address:
    return models.Address(
        id=ADDRESS,
        userId=user_id,
        label="Home",
        line1="12 St James's Square",
        line2=None,
        city="London",
        region=None,
        postalCode="SW1Y 4JH",
        country="GB",
        createdAt=NOW,
        updatedAt=NOW,
    )


class FakeUserService:
    """Every operation of the user contract, answering from fixed values."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []

    async def list_users(
        self, *, caller: Caller, limit: int, cursor: str | None
    ) -> models.ProfilePage:
        self.calls.append(("list_users", {"limit": limit, "cursor": cursor}))
        return models.ProfilePage(items=[profile(OWNER)], nextCursor=None)

    async def get_user_profile(self, *, caller: Caller, user_id: uuid.UUID) -> models.Profile:
        self.calls.append(("get_user_profile", {"caller": caller, "path": current_request().url}))
        if user_id == PENDING:
            raise RefusedError(404, "Profile not created yet", {"Retry-After": "2"})
        return profile(user_id)

    async def update_user_profile(
        self, *, caller: Caller, user_id: uuid.UUID, body: models.UpdateProfileRequest
    ) -> models.Profile:
        return profile(user_id)

    async def list_addresses(self, *, caller: Caller, user_id: uuid.UUID) -> models.AddressList:
        return models.AddressList(items=[address(user_id)])

    async def create_address(
        self, *, caller: Caller, user_id: uuid.UUID, body: models.CreateAddressRequest
    ) -> responses.CreateAddressResponse:
        location = f"/api/v1/users/{user_id}/addresses/{ADDRESS}"
        return responses.CreateAddressResponse(body=address(user_id), location=location)

    async def get_address(
        self, *, caller: Caller, user_id: uuid.UUID, address_id: uuid.UUID
    ) -> models.Address:
        return address(user_id)

    async def delete_address(
        self, *, caller: Caller, user_id: uuid.UUID, address_id: uuid.UUID
    ) -> None:
        return None

    async def update_address(
        self,
        *,
        caller: Caller,
        user_id: uuid.UUID,
        address_id: uuid.UUID,
        body: models.UpdateAddressRequest,
    ) -> models.Address:
        return address(user_id)

    async def get_liveness(self) -> models.HealthStatus:
        return models.HealthStatus(status="ok")

    async def get_readiness(self) -> responses.GetReadinessResponse:
        down = models.ReadinessStatus.unavailable
        return responses.GetReadinessResponse(
            status=503, body=models.Readiness(status=down, checks={"database": down})
        )

    async def get_metrics(self) -> str:
        return METRICS


class Harness:
    """A FastAPI app around the generated user router, and a typed client of it."""

    def __init__(self) -> None:
        self.service = FakeUserService()
        self.authenticator = FakeAuthenticator()
        self.app = FastAPI()
        self.app.include_router(user_server.build_router(self.service, self.authenticator))
        self.app.add_exception_handler(RefusedError, problem)
        self.http = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.app), base_url="http://user.test"
        )
        self.client = user_client.UserServiceClient(self.http, bearer_auth="good")


@pytest.fixture
async def harness() -> Any:
    harness = Harness()
    async with harness.http:
        yield harness


# --- routers and security ----------------------------------------------------------------------


@pytest.mark.parametrize("service", sorted(SERVERS))
def test_the_generated_router_binds_exactly_the_contracts_operations(service: str) -> None:
    implementation = cast(Any, object())  # routes call it only when requested
    router = SERVERS[service].build_router(implementation, FakeAuthenticator())

    bound = {
        (method.lower(), route.path, route.operation_id)
        for route in router.routes
        for method in getattr(route, "methods", ())
    }

    assert bound == {(m, p, op["operationId"]) for m, p, op in operations(service)}


@pytest.mark.parametrize("service", sorted(SERVERS))
def test_the_security_table_says_what_each_operations_security_says(service: str) -> None:
    expected = {
        op["operationId"]: Security(
            tuple(
                Requirement(scheme, frozenset(roles))
                for requirement in op["security"]
                for scheme, roles in requirement.items()
            ),
            op.get("x-owner-parameter"),
        )
        for _, _, op in operations(service)
        if op.get("security")
    }

    assert expected == SERVERS[service].SECURITY


async def test_a_bad_body_without_a_credential_gets_the_authenticators_refusal_first(
    harness: Harness,
) -> None:
    response = await harness.http.patch(f"/api/v1/users/{OWNER}", json={"phone": 5, "x": 1})

    assert response.status_code == 401
    assert response.json()["title"] == "Unauthenticated"


async def test_a_bad_body_with_a_credential_is_still_refused_by_the_contract(
    harness: Harness,
) -> None:
    response = await harness.http.patch(
        f"/api/v1/users/{OWNER}", json={"phone": 5}, headers={"Authorization": "Bearer good"}
    )

    assert response.status_code == 422


async def test_an_owner_operation_gives_the_authenticator_its_owner_parameter(
    harness: Harness,
) -> None:
    await harness.client.get_user_profile(user_id=OWNER)
    await harness.client.list_users()

    assert harness.authenticator.seen == [
        Security((Requirement("bearerAuth", frozenset({"admin"})),), "userId"),
        Security((Requirement("bearerAuth", frozenset({"admin"})),), None),
    ]


async def test_the_implementation_gets_the_caller_the_parameters_and_the_request(
    harness: Harness,
) -> None:
    await harness.client.list_users(cursor="A" * 32)
    await harness.client.get_user_profile(user_id=OWNER)

    (_, listed), (_, read) = harness.service.calls
    assert listed == {"limit": 20, "cursor": "A" * 32}  # the contract's default limit
    assert read["caller"].subject == str(OWNER)
    assert read["path"].path == f"/api/v1/users/{OWNER}"


async def test_a_created_address_answers_201_with_its_location(harness: Harness) -> None:
    response = await harness.http.post(
        f"/api/v1/users/{OWNER}/addresses",
        json={
            "label": "Home",
            "line1": "1 A St",
            "city": "London",
            "postalCode": "X",
            "country": "GB",
        },
        headers={"Authorization": "Bearer good"},
    )

    assert response.status_code == 201
    assert response.headers["Location"] == f"/api/v1/users/{OWNER}/addresses/{ADDRESS}"
    assert response.headers["Content-Type"] == "application/json"
    assert response.json()["id"] == str(ADDRESS)


async def test_a_body_keeps_the_nulls_its_schema_allows(harness: Harness) -> None:
    response = await harness.http.get(
        f"/api/v1/users/{OWNER}", headers={"Authorization": "Bearer good"}
    )

    assert response.content == profile(OWNER).model_dump_json().encode()
    assert response.json()["email"] is None


async def test_a_body_leaves_out_the_optional_properties_its_schema_does_not_allow_null() -> None:
    class Keys:
        async def get_jwks(self) -> auth_responses.GetJwksResponse:
            key = auth_models.Jwk(kty="OKP", kid="k1", use="sig", alg="EdDSA", crv="Ed25519", x="A")
            return auth_responses.GetJwksResponse(
                body=auth_models.JWKS(keys=[key]), cache_control="public, max-age=25"
            )

    app = FastAPI()
    app.include_router(auth_server.build_router(cast(Any, Keys()), FakeAuthenticator()))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://auth.test"
    ) as http:
        response = await http.get("/.well-known/jwks.json")

    assert response.headers["Cache-Control"] == "public, max-age=25"
    assert response.json() == {
        "keys": [
            {"kty": "OKP", "kid": "k1", "use": "sig", "alg": "EdDSA", "crv": "Ed25519", "x": "A"}
        ]
    }


# --- the typed client --------------------------------------------------------------------------


async def test_the_typed_client_round_trips_through_the_generated_router(
    harness: Harness,
) -> None:
    read = await harness.client.get_user_profile(user_id=OWNER)
    created = await harness.client.create_address(
        user_id=OWNER,
        body=models.CreateAddressRequest(
            label="Home", line1="1 A St", city="London", postalCode="X", country="GB"
        ),
    )
    await harness.client.delete_address(user_id=OWNER, address_id=ADDRESS)  # 204: None
    readiness = await harness.client.get_readiness()

    assert read == profile(OWNER)
    assert created == responses.CreateAddressResponse(
        body=address(OWNER), location=f"/api/v1/users/{OWNER}/addresses/{ADDRESS}"
    )
    assert readiness.status == 503
    assert readiness.body.checks == {"database": models.ReadinessStatus.unavailable}


async def test_a_text_response_is_answered_with_the_contracts_media_type_and_read_as_text(
    harness: Harness,
) -> None:
    answer = await harness.http.get("/metrics")
    read = await harness.client.get_metrics()

    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain; version=0.0.4")
    assert answer.text == METRICS
    assert read == METRICS


async def test_a_problem_answer_raises_problem_error_with_its_body_and_headers(
    harness: Harness,
) -> None:
    with pytest.raises(user_client.ProblemError) as raised:
        await harness.client.get_user_profile(user_id=PENDING)

    assert raised.value.status == 404
    assert raised.value.problem == models.Problem(
        type="about:blank", title="Profile not created yet", status=404, detail="no"
    )
    assert raised.value.retry_after == 2


async def test_a_refused_credential_raises_problem_error_and_no_credential_is_sent_unasked(
    harness: Harness,
) -> None:
    anonymous = harness.client.with_credentials()

    with pytest.raises(user_client.ProblemError) as raised:
        await anonymous.get_user_profile(user_id=OWNER)
    live = await anonymous.get_liveness()

    assert raised.value.status == 401
    assert live == models.HealthStatus(status="ok")


async def test_an_answer_that_is_no_problem_raises_an_about_blank_problem() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(502, text="<html>bad gateway</html>")

    async with httpx.AsyncClient(
        transport=httpx.MockTransport(answer), base_url="http://user.test"
    ) as http:
        with pytest.raises(user_client.ProblemError) as raised:
            await user_client.UserServiceClient(http).get_liveness()

    assert raised.value.problem == models.Problem(
        type="about:blank", title="Bad Gateway", status=502
    )


async def test_the_client_sends_the_fields_set_a_none_set_as_null_and_its_credential() -> None:
    sent: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        if request.url.path == "/api/v1/users":
            return httpx.Response(200, json={"items": [], "nextCursor": None})
        return httpx.Response(200, content=profile(OWNER).model_dump_json())

    async with httpx.AsyncClient(
        transport=httpx.MockTransport(answer), base_url="http://user.test"
    ) as http:
        client = user_client.UserServiceClient(http, bearer_auth="t0")
        await client.update_user_profile(
            user_id=OWNER, body=models.UpdateProfileRequest(phone=None, firstName="Ada")
        )
        await client.with_credentials(bearer_auth="t1").list_users(limit=5)

    patch, listing = sent
    assert patch.url.path == f"/api/v1/users/{OWNER}"
    assert json.loads(patch.content) == {"phone": None, "firstName": "Ada"}
    assert patch.headers["Authorization"] == "Bearer t0"
    assert patch.headers["Content-Type"] == "application/json"
    assert dict(listing.url.params) == {"limit": "5"}
    assert listing.headers["Authorization"] == "Bearer t1"


# --- regeneration ------------------------------------------------------------------------------


def load(path: Path, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[name]
    return module


def test_tightening_an_operations_security_and_regenerating_changes_who_may_call(
    project_copy: Project,
) -> None:
    contract = project_copy.root / "contracts/openapi/user-service.yaml"
    text = contract.read_text()
    start = text.index("      operationId: getUserProfile")
    owner = text.index("      x-owner-parameter: userId\n", start)
    contract.write_text(
        text[:owner] + text[owner:].replace("      x-owner-parameter: userId\n", "", 1)
    )

    generation.write(project_copy, generation.expected_files(project_copy))
    regenerated = load(project_copy.root / "generated/user/server.py", "regenerated_user_server")

    assert regenerated.SECURITY["getUserProfile"] == Security(
        (Requirement("bearerAuth", frozenset({"admin"})),), None
    )
    assert regenerated.SECURITY["updateUserProfile"].owner_parameter == "userId"


def test_check_names_a_drifted_server_client_and_events_module(project_copy: Project) -> None:
    for module in ("user/server.py", "auth/client.py", "notification/events.py"):
        path = project_copy.root / "generated" / module
        path.write_text(path.read_text() + "\n# a hand edit\n")

    result = CliRunner().invoke(cli, ["generate", "--check", "--root", str(project_copy.root)])

    assert result.exit_code == 1
    output = " ".join(result.output.split())
    assert (
        "generated/user/server.py differs from what contracts/openapi/user-service.yaml" in output
    )
    assert (
        "generated/auth/client.py differs from what contracts/openapi/auth-service.yaml" in output
    )
    assert (
        "generated/notification/events.py differs from what "
        "contracts/asyncapi/notification-service.yaml" in output
    )


def test_mypy_names_the_operation_and_the_message_an_implementation_does_not_handle(
    tmp_path: Path,
) -> None:
    program = tmp_path / "incomplete.py"
    program.write_text(
        "from generated.notification import events, models, responses, server\n"
        "from generated.security import Authenticator\n\n\n"
        "class Notifications:\n"
        "    async def on_user_deactivated(self, event: object) -> bool:\n"
        "        return True\n\n"
        "    async def on_password_reset_requested(self, event: object) -> bool:\n"
        "        return True\n\n"
        "    async def get_liveness(self) -> models.HealthStatus:\n"
        "        raise NotImplementedError\n\n"
        "    async def get_readiness(self) -> responses.GetReadinessResponse:\n"
        "        raise NotImplementedError\n\n"
        "    async def get_metrics(self) -> str:\n"
        "        raise NotImplementedError\n\n\n"
        "def wire(security: Authenticator) -> None:\n"
        "    events.subscriptions(Notifications())\n"
        "    server.build_router(Notifications(), security)\n"
    )

    report, _, status = mypy.api.run(
        ["--strict", "--no-incremental", "--follow-imports=silent", str(program)]
    )

    assert status == 1
    assert '"Notifications" is missing following "Receiver" protocol member:' in report
    assert "on_email_verification_requested" in report
    assert (
        '"Notifications" is missing following "NotificationServiceInterface" protocol member:'
        in report
    )
    assert "list_notifications" in report


TINY_CONTRACT = """
openapi: 3.1.0
info: {title: Tiny, version: 1.0.0}
paths:
  /things/{thingId}:
    put:
      operationId: putThing
      parameters:
        - {name: thingId, in: path, required: true, schema: {type: integer, minimum: 1}}
        - {name: X-Request-Id, in: header, required: false, schema: {type: string}}
        - {name: kind, in: query, schema: {$ref: '#/components/schemas/Kind', default: small}}
      requestBody:
        content:
          application/json:
            schema: {$ref: '#/components/schemas/Thing'}
      responses:
        '200':
          description: Replaced.
          headers:
            ETag: {required: false, schema: {type: string}}
          content:
            application/json:
              schema: {$ref: '#/components/schemas/Thing'}
        '404':
          description: No such thing.
          content:
            application/problem+json:
              schema: {$ref: '#/components/schemas/Problem'}
components:
  schemas:
    Kind: {type: string, enum: [small, large]}
    Thing:
      type: object
      properties:
        name: {type: string}
    Problem:
      type: object
      required: [title, status]
      properties:
        title: {type: string}
        status: {type: integer}
"""


def test_header_parameters_optional_bodies_enum_defaults_and_optional_headers_are_typed(
    tmp_path: Path,
) -> None:
    from harness.authoring import codegen, operations
    from harness.authoring.contracts import Resolver

    path = tmp_path / "tiny.yaml"
    path.write_text(TINY_CONTRACT)

    api = operations.Reader(path, Resolver(), {"Kind", "Thing", "Problem"}).api()
    (operation,) = api.operations
    source = codegen.render_server(
        api, header="# tiny\n", contract="tiny.yaml", package="tiny", interface="Tiny", typed=True
    )

    assert [(p.python, p.marker, p.default) for p in operation.parameters] == [
        ("thing_id", "Path(alias='thingId', ge=1)", None),
        ("kind", "Query()", "models.Kind('small')"),
        ("x_request_id", "Header(alias='X-Request-Id')", "None"),
    ]
    assert operation.result == "responses.PutThingResponse"
    assert [(f.name, f.annotation, f.default) for f in api.result_fields(operation)] == [
        ("body", "models.Thing", None),
        ("e_tag", "str | None", "None"),
    ]
    assert 'kind: Annotated[models.Kind, Query()] = models.Kind("small"),' in source
    assert "body: models.Thing | None = None," in source
    assert 'headers["ETag"] = result.e_tag' in source
    compile(source, "server.py", "exec")


def test_a_response_mixing_optional_and_nullable_properties_is_refused(tmp_path: Path) -> None:
    from harness.authoring import operations
    from harness.authoring.contracts import Resolver

    path = tmp_path / "tiny.yaml"
    path.write_text(
        TINY_CONTRACT.replace(
            "        name: {type: string}",
            "        name: {type: string}\n        note: {type: [string, 'null']}",
        )
    )

    with pytest.raises(
        operations.OperationError, match=r"optional non-nullable properties \(name\)"
    ):
        operations.Reader(path, Resolver(), {"Kind", "Thing", "Problem"}).api()


TEXT_RESULT = """
  /status:
    get:
      operationId: getStatus
      responses:
        '200':
          description: The status as text.
          content:
            text/plain; version=0.0.4:
              schema: {type: string}
components:"""


def test_a_text_response_is_typed_as_a_string_and_served_with_its_media_type(
    tmp_path: Path,
) -> None:
    from harness.authoring import codegen, operations
    from harness.authoring.contracts import Resolver

    path = tmp_path / "tiny.yaml"
    path.write_text(TINY_CONTRACT.replace("\ncomponents:", TEXT_RESULT, 1))

    api = operations.Reader(path, Resolver(), {"Kind", "Thing", "Problem"}).api()
    status = next(op for op in api.operations if op.operation_id == "getStatus")
    server = codegen.render_server(
        api, header="# tiny\n", contract="tiny.yaml", package="tiny", interface="Tiny", typed=True
    )
    client = codegen.render_client(
        api, header="# tiny\n", contract="tiny.yaml", package="tiny", client="Tiny", typed=True
    )

    assert status.result == "str"
    assert "async def get_status(self) -> str:" in server
    assert 'media_type="text/plain; version=0.0.4"' in server
    assert "return response.text" in client
    compile(server, "server.py", "exec")
    compile(client, "client.py", "exec")


def test_a_text_response_beside_another_result_is_refused(tmp_path: Path) -> None:
    from harness.authoring import operations
    from harness.authoring.contracts import Resolver

    path = tmp_path / "tiny.yaml"
    both = TEXT_RESULT.replace(
        "components:",
        "        '202':\n          description: Accepted.\ncomponents:",
    )
    path.write_text(TINY_CONTRACT.replace("\ncomponents:", both, 1))

    with pytest.raises(operations.OperationError, match="a text response must be the only result"):
        operations.Reader(path, Resolver(), {"Kind", "Thing", "Problem"}).api()


# --- events ------------------------------------------------------------------------------------


def received(document: str) -> set[str]:
    """The event types a document's receive operations take, read from the YAML."""
    data = yaml.safe_load((REPOSITORY / f"contracts/asyncapi/{document}").read_text())
    definitions = yaml.safe_load((REPOSITORY / "contracts/asyncapi/user-events.yaml").read_text())
    keys = {
        message["$ref"].rsplit("/", 1)[1]
        for operation in data["operations"].values()
        if operation["action"] == "receive"
        for message in operation["messages"]
    }
    return {definitions["components"]["messages"][key]["name"] for key in keys}


class Handled:
    """Receives every message either receiving service takes, recording each."""

    def __init__(self) -> None:
        self.events: list[object] = []

    async def on_user_created(self, event: events.UserCreatedPayload) -> bool:
        self.events.append(event)
        return True

    async def on_user_deactivated(self, event: events.UserDeactivatedPayload) -> bool:
        self.events.append(event)
        return False

    async def on_email_verification_requested(
        self, event: events.EmailVerificationRequestedPayload
    ) -> bool:
        self.events.append(event)
        return True

    async def on_password_reset_requested(
        self, event: events.PasswordResetRequestedPayload
    ) -> bool:
        self.events.append(event)
        return True


@pytest.mark.parametrize(
    ("module", "document"),
    [(user_events, "user-service.yaml"), (notification_events, "notification-service.yaml")],
)
def test_the_subscriptions_table_has_a_handler_for_each_message_received(
    module: ModuleType, document: str
) -> None:
    assert set(module.subscriptions(Handled())) == received(document)


@pytest.mark.parametrize("module", [user_events, notification_events])
def test_queue_and_filter_policy_are_those_provisioned(module: ModuleType) -> None:
    topology = topology_from_contracts(Project.load(REPOSITORY))

    (subscription,) = [s for s in topology.subscriptions if s.queue == module.QUEUE]
    assert subscription.filter_policy == module.FILTER_POLICY
    assert module.QUEUE in {queue.name for queue in topology.queues}


def user_created() -> events.UserCreatedPayload:
    return events.UserCreatedPayload.model_validate(
        {
            "eventId": str(uuid.uuid4()),
            "eventType": catalog.USER_CREATED,
            "schemaVersion": "1.0.0",
            "sequence": 1,
            "userId": str(OWNER),
            "email": "ada@example.com",
            "timestamp": NOW.isoformat(),
            "source": "auth-service",
        }
    )


async def test_a_subscription_hands_its_event_to_the_handler_and_refuses_another_type() -> None:
    handled = Handled()
    table = user_events.subscriptions(handled)
    event = user_created()

    applied = await table[catalog.USER_CREATED](event)
    with pytest.raises(TypeError, match=r"expected user\.deactivated"):
        await table[catalog.USER_DEACTIVATED](event)

    assert applied is True
    assert handled.events == [event]


async def test_the_publisher_puts_each_event_in_the_sink() -> None:
    class Sink:
        def __init__(self) -> None:
            self.published: list[auth_events.SentEvent] = []

        async def publish(self, event: auth_events.SentEvent) -> None:
            self.published.append(event)

    sink = Sink()
    event = user_created()

    await auth_events.Publisher(sink).user_created(event)

    assert sink.published == [event]


def test_the_catalog_names_every_message_with_a_constant() -> None:
    constants = {
        catalog.USER_CREATED,
        catalog.EMAIL_VERIFICATION_REQUESTED,
        catalog.PASSWORD_RESET_REQUESTED,
        catalog.USER_DEACTIVATED,
    }

    assert constants == set(catalog.MESSAGES)
    assert catalog.MESSAGES[catalog.USER_CREATED].payload is events.UserCreatedPayload


def test_a_fake_authenticator_is_an_authenticator() -> None:
    authenticator: Authenticator = FakeAuthenticator()

    assert authenticator is not None
