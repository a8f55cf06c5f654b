"""Every request example in each registered service's OpenAPI contract is one the service
accepts: each example of each parameter and of each request body, sent to the running service
(as an admin where the operation needs a credential), is never refused as invalid (400 or 422),
nor fails (5xx). An example may still meet a resource that does not exist (404), a spent token
(401) or a conflict (409): those are answers about the state, not about the request.

A request is built from the operation's examples: one per body example, with every parameter at
its first example; then one per further example of each parameter."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.conftest import REPOSITORY
from tests.contract.served import SERVICES, Served, served

pytestmark = pytest.mark.contract

METHODS = ("get", "put", "post", "delete", "patch")


def contract(service: str) -> dict[str, Any]:
    path = REPOSITORY / "contracts" / "openapi" / f"{service}-service.yaml"
    document: dict[str, Any] = yaml.safe_load(path.read_text())
    return document


def resolve(document: dict[str, Any], node: Any) -> Any:
    """The node, with a local `$ref` followed (the contracts use no others here)."""
    while isinstance(node, dict) and "$ref" in node:
        reference: str = node["$ref"]
        assert reference.startswith("#/"), f"not a local reference: {reference}"
        target: Any = document
        for part in reference.removeprefix("#/").split("/"):
            target = target[part.replace("~1", "/").replace("~0", "~")]
        node = target
    return node


def examples_of(document: dict[str, Any], holder: dict[str, Any]) -> list[tuple[str, Any]]:
    """The `example` and each of the `examples` of a parameter or media type, and of its
    schema's `examples` list, each value once: (label, value)."""
    found: list[tuple[str, Any]] = []
    if "example" in holder:
        found.append(("example", holder["example"]))
    for name, example in (holder.get("examples") or {}).items():
        found.append((name, resolve(document, example)["value"]))
    schema = resolve(document, holder.get("schema") or {})
    for index, value in enumerate(schema.get("examples") or []):
        found.append((f"schema-{index}", value))
    return [
        (label, value)
        for i, (label, value) in enumerate(found)
        if value not in [seen for _, seen in found[:i]]
    ]


@dataclass
class Request:
    """One example request of an operation."""

    service: str
    operation: str
    label: str
    method: str
    path: str
    secured: bool
    path_parameters: dict[str, Any] = field(default_factory=dict)
    query: dict[str, Any] = field(default_factory=dict)
    body: Any = None
    has_body: bool = False

    @property
    def id(self) -> str:
        return f"{self.service}-{self.operation}-{self.label}"

    def url(self) -> str:
        path = self.path
        for name, value in self.path_parameters.items():
            path = path.replace(f"{{{name}}}", str(value))
        return path


def example_requests(service: str) -> Iterator[Request]:
    document = contract(service)
    for path, item in document["paths"].items():
        for method in METHODS:
            if method in item:
                yield from operation_requests(service, document, path, method, item)


def operation_requests(
    service: str, document: dict[str, Any], path: str, method: str, item: dict[str, Any]
) -> Iterator[Request]:
    operation = item[method]
    own = [resolve(document, p) for p in operation.get("parameters", [])]
    names = {p["name"] for p in own}
    shared = [resolve(document, p) for p in item.get("parameters", [])]
    parameters = {p["name"]: p for p in [p for p in shared if p["name"] not in names] + own}
    values = {name: examples_of(document, p) for name, p in parameters.items()}
    first = {name: found[0][1] for name, found in values.items() if found}
    content = resolve(document, operation.get("requestBody") or {}).get("content") or {}
    bodies = examples_of(document, content.get("application/json") or {})
    base = Request(
        service,
        operation["operationId"],
        "parameters",
        method.upper(),
        path,
        secured=bool(operation.get("security", document.get("security"))),
        body=bodies[0][1] if bodies else None,
        has_body=bool(bodies),
    )

    def with_parameters(request: Request, chosen: dict[str, Any]) -> Request:
        located = {
            place: {n: v for n, v in chosen.items() if parameters[n]["in"] == place}
            for place in ("path", "query")
        }
        return replace(request, path_parameters=located["path"], query=located["query"])

    for label, body in bodies:
        yield with_parameters(replace(base, label=f"body-{label}", body=body), first)
    if not bodies and first:
        yield with_parameters(base, first)
    for name, found in values.items():
        for label, value in found[1:]:
            yield with_parameters(replace(base, label=f"{name}-{label}"), {**first, name: value})


REQUESTS = [request for service in SERVICES for request in example_requests(service)]
CASES = [
    pytest.param(
        request, id=request.id, marks=pytest.mark.conformance(request.service, "contract-code")
    )
    for request in REQUESTS
]


def test_the_contracts_have_request_examples_for_parameters_and_bodies() -> None:
    operations = {(request.service, request.operation) for request in REQUESTS}

    assert ("user", "listUsers") in operations
    assert ("notification", "listNotifications") in operations
    assert ("auth", "loginUser") in operations
    assert any(request.has_body for request in REQUESTS)
    assert any(request.query.get("cursor") for request in REQUESTS)


@pytest.fixture(scope="module")
def services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Served]]:
    with ExitStack() as stack:
        running: dict[str, Served] = {}
        for service in SERVICES:
            directory: Path = tmp_path_factory.mktemp(f"examples-{service}")
            url = f"sqlite:///{directory / f'{service}.db'}"
            running[service] = stack.enter_context(served(service, url, directory))
        yield running


@pytest.mark.parametrize("request_", CASES)
def test_every_request_example_is_accepted_by_the_service(
    services: dict[str, Served], request_: Request
) -> None:
    running = services[request_.service]
    headers = {"Authorization": running.authorization} if request_.secured else {}
    options: dict[str, Any] = {"json": request_.body} if request_.has_body else {}

    response = httpx.request(
        request_.method,
        running.url + request_.url(),
        params=request_.query,
        headers=headers,
        timeout=30,
        **options,
    )

    assert response.status_code not in (400, 422), (
        f"{request_.method} {request_.url()} {request_.query} {request_.body!r}: "
        f"{response.status_code} {response.text}"
    )
    assert response.status_code < 500, response.text
