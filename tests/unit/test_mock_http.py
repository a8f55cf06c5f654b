"""`accord mock SERVICE`'s HTTP mock (harness/mock/http.py), driven in process over ASGI: every
operation of every registered service's contract, with every documented status and named
example, answers as the contract says; invalid requests get the contract's problems; the
stateful mode keeps addresses."""

from __future__ import annotations

import logging
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from harness.mock.http import Contract, Generator, Node, Operation, build_app, parse_prefer
from harness.project import Project
from tests.conftest import REPOSITORY

# Every registered service (`[[tool.accord.service]]`), each with its OpenAPI contract.
SERVICES = tuple(entry.name for entry in Project.load(REPOSITORY).services)
USER = "6f1c1e0e-8f3e-4c1a-9d3e-2b7f4a6c9e10"
ADDRESSES = f"/api/v1/users/{USER}/addresses"
BEARER = {"Authorization": "Bearer any-token"}
HOME = {
    "label": "Home",
    "line1": "12 St James's Square",
    "city": "London",
    "postalCode": "SW1Y 4JH",
    "country": "GB",
}


def contract_path(service: str) -> Path:
    return REPOSITORY / "contracts" / "openapi" / f"{service}-service.yaml"


def client(service: str, **options: Any) -> httpx.AsyncClient:
    app = build_app(contract_path(service), **options)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://mock")


def example_of(contract: Contract, holder: Node) -> Any:
    """A valid value for a parameter or a media type: its example, else one from its schema."""
    if "example" in holder.value:
        return holder.value["example"]
    examples = contract.get(holder, "examples")
    if examples is not None and examples.value:
        first = contract.get(examples, next(iter(examples.value)))
        assert first is not None
        return first.value["value"]
    schema = contract.get(holder, "schema")
    assert schema is not None
    return Generator(contract, random.Random(0)).value(schema)


def valid_request(contract: Contract, op: Operation) -> dict[str, Any]:
    """Method, URL, headers and body of a request the contract accepts."""
    path, query, headers = op.template, {}, dict(BEARER)
    headers["X-API-Key"] = "any-key"
    for parameter in op.parameters:
        where, name = parameter.value["in"], parameter.value["name"]
        if where == "path":
            path = path.replace("{" + name + "}", str(example_of(contract, parameter)))
        elif parameter.value.get("required") and where == "query":
            query[name] = str(example_of(contract, parameter))
        elif parameter.value.get("required") and where == "header":
            headers[name] = str(example_of(contract, parameter))
    request: dict[str, Any] = {
        "method": op.method,
        "url": path,
        "params": query,
        "headers": headers,
    }
    body = contract.get(op.node, "requestBody", "content", "application/json")
    if body is not None:
        request["json"] = example_of(contract, body)
    return request


def operations() -> Iterator[tuple[str, str]]:
    for service in SERVICES:
        for op in Contract(contract_path(service)).operations:
            yield service, op.operation_id


def find(contract: Contract, operation_id: str) -> Operation:
    return next(op for op in contract.operations if op.operation_id == operation_id)


def assert_conforms(contract: Contract, op: Operation, response: httpx.Response) -> None:
    """The status is documented, the body valid against its schema, required headers sent."""
    documented = contract.get(op.node, "responses", str(response.status_code))
    assert documented is not None, f"{op.operation_id}: undocumented {response.status_code}"
    content = documented.value.get("content") or {}
    if content:
        answered = response.headers["content-type"].split(";")[0]
        # A documented media type may carry parameters (`text/plain; version=0.0.4`).
        by_type = {key.split(";")[0].strip(): key for key in content}
        assert answered in by_type, f"{op.operation_id}: {answered} not documented"
        media_type = by_type[answered]
        schema = contract.get(documented, "content", media_type, "schema")
        assert schema is not None
        body = response.json() if "json" in answered else response.text
        errors = [e.message for e in contract.validator(schema).iter_errors(body)]
        assert errors == [], f"{op.operation_id} {response.status_code}: {errors}"
    else:
        assert response.content == b""
    for name in documented.value.get("headers") or {}:
        header = contract.get(documented, "headers", name)
        assert header is not None
        if header.value.get("required"):
            assert name in response.headers, f"{op.operation_id}: no {name} header"


@pytest.mark.parametrize(("service", "operation_id"), list(operations()))
async def test_every_operation_answers_every_documented_status_and_example_as_its_contract_says(
    service: str, operation_id: str
) -> None:
    contract = Contract(contract_path(service))
    op = find(contract, operation_id)
    request = valid_request(contract, op)
    responses = contract.get(op.node, "responses")
    assert responses is not None
    async with client(service) as mock:
        default = await mock.request(**request)
        assert default.status_code < 300, default.text
        assert_conforms(contract, op, default)
        for status in responses.value:
            headers = {**request["headers"], "Prefer": f"code={status}"}
            answered = await mock.request(**{**request, "headers": headers})
            assert answered.status_code == int(status)
            assert answered.headers["Preference-Applied"] == f"code={status}"
            assert_conforms(contract, op, answered)
            documented = contract.get(responses, status)
            assert documented is not None
            for media in (documented.value.get("content") or {}).values():
                for name in media.get("examples") or {}:
                    prefer = {**request["headers"], "Prefer": f"code={status}, example={name}"}
                    named = await mock.request(**{**request, "headers": prefer})
                    assert named.status_code == int(status)
                    assert named.headers["Preference-Applied"] == f"code={status}, example={name}"
                    assert_conforms(contract, op, named)


def test_every_operation_of_every_services_contract_is_covered() -> None:
    covered = dict.fromkeys(SERVICES, 0)
    for service, _ in operations():
        covered[service] += 1

    assert covered == {"auth": 18, "user": 11, "notification": 4, "gateway": 5}


async def test_a_request_without_credentials_gets_the_contracts_401_problem() -> None:
    async with client("user") as mock:
        response = await mock.get(f"/api/v1/users/{USER}")
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"] == "https://accord.example/problems/unauthenticated"
    assert "WWW-Authenticate" in response.headers


async def test_the_service_api_key_the_contract_names_is_a_credential() -> None:
    async with client("auth") as mock:
        with_key = await mock.get(f"/api/v1/auth/users/{USER}/roles", headers={"X-API-Key": "k"})
        without = await mock.get(f"/api/v1/auth/users/{USER}/roles")
    assert with_key.status_code == 200
    assert without.status_code == 401


async def test_a_body_that_breaks_the_schema_gets_422_with_a_pointer_to_each_offending_value() -> (
    None
):
    async with client("user") as mock:
        response = await mock.post(
            ADDRESSES, json={**HOME, "country": "Britain", "city": None}, headers=BEARER
        )
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["type"] == "https://accord.example/problems/validation-error"
    assert {error["pointer"] for error in problem["errors"]} == {"/body/country", "/body/city"}


async def test_a_missing_required_field_is_pointed_at_by_name() -> None:
    body = {key: value for key, value in HOME.items() if key != "city"}
    async with client("user") as mock:
        response = await mock.post(ADDRESSES, json=body, headers=BEARER)
    assert response.status_code == 422
    assert [error["pointer"] for error in response.json()["errors"]] == ["/body/city"]


async def test_a_path_parameter_that_is_not_a_uuid_gets_422() -> None:
    async with client("user") as mock:
        response = await mock.get("/api/v1/users/not-a-uuid", headers=BEARER)
    assert response.status_code == 422
    assert response.json()["errors"][0]["pointer"] == "/path/userId"


async def test_a_body_that_is_not_json_gets_the_contracts_400_problem() -> None:
    async with client("user") as mock:
        response = await mock.post(
            ADDRESSES, content=b"{not json", headers={**BEARER, "Content-Type": "application/json"}
        )
    assert response.status_code == 400
    assert response.json()["type"] == "https://accord.example/problems/malformed-request"


async def test_a_body_of_an_undocumented_media_type_is_refused_as_a_problem() -> None:
    async with client("user") as mock:
        response = await mock.post(
            ADDRESSES, content=b"label=Home", headers={**BEARER, "Content-Type": "text/plain"}
        )
    assert response.status_code in (400, 415)
    assert response.headers["content-type"] == "application/problem+json"


async def test_prefer_code_404_and_a_named_example_pick_the_documented_problem() -> None:
    async with client("user") as mock:
        pending = await mock.get(
            f"/api/v1/users/{USER}", headers={**BEARER, "Prefer": "code=404, example=pending"}
        )
        not_found = await mock.get(
            f"/api/v1/users/{USER}", headers={**BEARER, "Prefer": "code=404"}
        )
    assert pending.status_code == 404
    assert pending.json()["type"] == "https://accord.example/problems/profile-pending"
    assert pending.headers["Preference-Applied"] == "code=404, example=pending"
    assert not_found.status_code == 404
    assert not_found.json()["type"] == "https://accord.example/problems/not-found"


async def test_prefer_example_alone_finds_the_status_that_documents_it() -> None:
    async with client("user") as mock:
        response = await mock.get(
            f"/api/v1/users/{USER}", headers={**BEARER, "Prefer": "example=pending"}
        )
    assert response.status_code == 404
    assert response.json()["type"] == "https://accord.example/problems/profile-pending"


async def test_a_preference_for_an_undocumented_status_is_ignored() -> None:
    async with client("auth") as mock:
        response = await mock.get("/health/live", headers={"Prefer": "code=418"})
    assert response.status_code == 200
    assert "Preference-Applied" not in response.headers


def test_prefer_headers_are_parsed_as_rfc_7240_says() -> None:
    assert parse_prefer(['code=404; x=y, example="pending"', "code=500", "respond-async"]) == {
        "code": "404",
        "example": "pending",
        "respond-async": "",
    }


async def test_a_schema_without_examples_is_answered_the_same_for_the_same_seed() -> None:
    contract = Contract(contract_path("user"))
    schema = contract.get(contract.root, "components", "schemas", "Profile")
    assert schema is not None
    first = Generator(contract, random.Random(7)).value(schema)
    again = Generator(contract, random.Random(7)).value(schema)
    assert first == again
    assert list(contract.validator(schema).iter_errors(first)) == []


async def test_an_unknown_path_and_an_undocumented_method_are_problems_not_errors() -> None:
    async with client("auth") as mock:
        unknown = await mock.get("/nowhere")
        wrong_method = await mock.delete("/health/live")
    assert unknown.status_code == 404
    assert wrong_method.status_code == 405
    assert wrong_method.headers["Allow"] == "GET"


async def test_the_stateful_mock_keeps_an_address_from_creation_to_deletion() -> None:
    async with client("user", stateful=True) as mock:
        assert (await mock.get(ADDRESSES, headers=BEARER)).json() == {"items": []}
        created = await mock.post(ADDRESSES, json=HOME, headers=BEARER)
        assert created.status_code == 201
        address = created.json()
        assert address["userId"] == USER
        assert address["label"] == "Home"
        item = f"{ADDRESSES}/{address['id']}"
        assert created.headers["Location"] == item

        assert (await mock.get(item, headers=BEARER)).json() == address
        assert (await mock.get(ADDRESSES, headers=BEARER)).json() == {"items": [address]}

        patched = await mock.patch(item, json={"label": "Work"}, headers=BEARER)
        assert patched.status_code == 200
        assert patched.json() == {**address, "label": "Work"}
        assert (await mock.get(item, headers=BEARER)).json()["label"] == "Work"

        assert (await mock.delete(item, headers=BEARER)).status_code == 204
        assert (await mock.get(item, headers=BEARER)).status_code == 404
        assert (await mock.delete(item, headers=BEARER)).status_code == 404
        assert (await mock.get(ADDRESSES, headers=BEARER)).json() == {"items": []}


async def test_each_request_is_logged_with_its_operation_and_the_answer_chosen(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.INFO, logger="accord.mock"):
        async with client("user") as mock:
            await mock.get(f"/api/v1/users/{USER}", headers={**BEARER, "Prefer": "example=pending"})
    lines = [r.getMessage() for r in caplog.records if r.name == "accord.mock"]
    assert lines == [f"GET /api/v1/users/{USER} → getUserProfile 404 (pending)"]


async def test_a_query_parameter_outside_its_schema_gets_422_pointing_at_it() -> None:
    async with client("user") as mock:
        response = await mock.get("/api/v1/users", params={"limit": "many"}, headers=BEARER)
        too_large = await mock.get("/api/v1/users", params={"limit": "500"}, headers=BEARER)
    assert response.status_code == 422
    assert [error["pointer"] for error in response.json()["errors"]] == ["/query/limit"]
    assert too_large.status_code == 422


OUTSIDE = """
openapi: 3.1.0
info: {title: Things, version: 1.0.0}
components:
  securitySchemes:
    queryKey: {type: apiKey, in: query, name: key}
  schemas:
    Thing:
      type: object
      required: [id, name, size, tags, createdAt]
      properties:
        id: {type: string, format: uuid}
        name: {type: string, minLength: 3, maxLength: 10}
        size: {type: integer, minimum: 1, maximum: 9}
        tags: {type: array, items: {type: string, enum: [red, green]}}
        createdAt: {type: string, format: date-time}
        note: {type: [string, "null"]}
security: [{queryKey: []}]
paths:
  /things:
    post:
      operationId: createThing
      requestBody:
        required: true
        content:
          application/json:
            schema: {type: object, required: [name], properties: {name: {type: string}}}
      responses:
        "201":
          description: Created.
          headers:
            Location: {required: true, schema: {type: string, format: uri-reference}}
          content:
            application/json:
              schema: {$ref: "#/components/schemas/Thing"}
        "415": {description: Not JSON.}
"""


async def test_a_contract_outside_the_project_is_answered_from_its_schemas_for_a_seed(
    tmp_path: Path,
) -> None:
    path = tmp_path / "things.yaml"
    path.write_text(OUTSIDE)
    contract = Contract(path)
    op = find(contract, "createThing")

    async def create(seed: int, **request: Any) -> httpx.Response:
        app = build_app(path, seed=seed)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://mock") as mock:
            return await mock.post("/things", **request)

    anonymous = await create(1, json={"name": "x"})
    first = await create(1, params={"key": "k"}, json={"name": "x"})
    again = await create(1, params={"key": "k"}, json={"name": "x"})
    plain = await create(
        1, params={"key": "k"}, content=b"x", headers={"Content-Type": "text/plain"}
    )

    assert anonymous.status_code == 401
    assert first.status_code == 201
    assert_conforms(contract, op, first)
    assert first.json() == again.json()
    assert first.headers["Location"] == again.headers["Location"]
    assert plain.status_code == 415
    assert plain.headers["content-type"] == "application/problem+json"


async def test_a_consumer_runs_register_then_profile_then_addresses_against_the_mocks() -> None:
    async with client("auth") as auth, client("user", stateful=True) as users:
        registered = await auth.post(
            "/api/v1/auth/register",
            json={"email": "ada@example.com", "password": "correct-horse-battery-staple"},
        )
        tokens = registered.json()
        bearer = {"Authorization": f"Bearer {tokens['accessToken']}"}
        profile = await users.get(f"/api/v1/users/{tokens['userId']}", headers=bearer)
        addresses = f"/api/v1/users/{tokens['userId']}/addresses"
        created = await users.post(addresses, json=HOME, headers=bearer)
        listed = await users.get(addresses, headers=bearer)

    assert registered.status_code == 201
    assert profile.status_code == 200
    assert profile.json()["id"] == tokens["userId"]  # the examples agree on the user
    assert created.status_code == 201
    assert listed.json() == {"items": [created.json()]}
