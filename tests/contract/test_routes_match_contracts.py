"""Contract ↔ code: every operation in each OpenAPI document is served by its app, every route
the app serves is in the contract, and each route's success status is one the contract
documents."""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from fastapi import FastAPI
from fastapi.routing import APIRoute
from starlette.routing import BaseRoute, Mount

from tests.conftest import REPOSITORY

pytestmark = pytest.mark.contract

SERVICES = [
    pytest.param(name, marks=pytest.mark.conformance(name, "contract-code"))
    for name in ("auth", "user", "notification", "gateway")
]
METHODS = {"GET", "PUT", "POST", "DELETE", "PATCH"}


def api_routes(routes: list[BaseRoute], prefix: str = "") -> Iterator[tuple[APIRoute, str]]:
    """Every `APIRoute` with its full path, through included routers and mounts."""
    for route in routes:
        if isinstance(route, APIRoute):
            yield route, prefix + route.path
        elif isinstance(route, Mount):
            yield from api_routes(list(route.routes), prefix + route.path)
        elif hasattr(route, "include_context"):  # FastAPI's lazily included routers
            context = route.include_context
            yield from api_routes(list(context.included_router.routes), prefix + context.prefix)


def app_for(service: str) -> FastAPI:
    settings = importlib.import_module(f"services.{service}.settings").Settings()
    app: FastAPI = importlib.import_module(f"services.{service}.app").create_app(settings)
    return app


def contract_for(service: str) -> dict[str, Any]:
    path = REPOSITORY / "contracts" / "openapi" / f"{service}-service.yaml"
    document: dict[str, Any] = yaml.safe_load(path.read_text())
    return document


def served(app: FastAPI) -> dict[tuple[str, str], APIRoute]:
    return {
        (method, path): route
        for route, path in api_routes(list(app.routes))
        for method in route.methods or ()
        if method in METHODS
    }


def documented(contract: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {
        (method.upper(), path): operation
        for path, item in contract["paths"].items()
        for method, operation in item.items()
        if method.upper() in METHODS
    }


@pytest.mark.parametrize("service", SERVICES)
def test_every_contract_operation_is_served_and_every_route_is_in_the_contract(
    service: str,
) -> None:
    routes = served(app_for(service))
    operations = documented(contract_for(service))

    assert sorted(set(operations) - set(routes)) == [], "in the contract, not served"
    assert sorted(set(routes) - set(operations)) == [], "served, not in the contract"


@pytest.mark.parametrize("service", SERVICES)
def test_every_route_answers_success_with_a_status_the_contract_documents(service: str) -> None:
    routes = served(app_for(service))
    operations = documented(contract_for(service))

    wrong = {
        f"{method} {path}": (
            route.status_code or 200,
            sorted(operations[(method, path)]["responses"]),
        )
        for (method, path), route in routes.items()
        if (method, path) in operations
        and str(route.status_code or 200) not in operations[(method, path)]["responses"]
    }
    assert wrong == {}


@pytest.mark.conformance("notification", "contract-code")
def test_the_route_check_notices_an_undocumented_route() -> None:
    app = app_for("notification")

    @app.get("/api/v1/secret")
    async def secret() -> dict[str, str]:
        return {}

    extra = set(served(app)) - set(documented(contract_for("notification")))
    assert extra == {("GET", "/api/v1/secret")}


@pytest.mark.conformance("user", "contract-code")
def test_the_route_check_notices_a_contract_operation_that_is_not_served() -> None:
    contract = contract_for("user")
    contract["paths"]["/api/v1/users/{userId}/avatar"] = {"put": {"responses": {"204": {}}}}

    missing = set(documented(contract)) - set(served(app_for("user")))
    assert missing == {("PUT", "/api/v1/users/{userId}/avatar")}
