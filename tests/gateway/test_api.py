"""Every operation of `contracts/openapi/gateway-service.yaml` is routed to `GatewayApi`, which
implements the whole generated interface (the operations' behaviour: tests/gateway/test_overview.py
and test_with_the_auth_service.py)."""

from __future__ import annotations

import inspect

import httpx
import pytest

from generated.gateway.server import GatewayServiceInterface
from services.gateway.api import GatewayApi
from services.gateway.app import create_app
from services.gateway.settings import Settings

# Each operation: (operationId, its method's name, HTTP method, path with a placeholder for
# each path parameter).
OPERATIONS = [
    ("getMyOverview", "get_my_overview", "GET", "/api/v1/me"),
    (
        "getUserOverview",
        "get_user_overview",
        "GET",
        "/api/v1/users/00000000-0000-4000-8000-000000000000/overview",
    ),
    ("getLiveness", "get_liveness", "GET", "/health/live"),
    ("getReadiness", "get_readiness", "GET", "/health/ready"),
]
IDS = [operation[0] for operation in OPERATIONS]


@pytest.mark.parametrize(("operation_id", "name", "method", "path"), OPERATIONS, ids=IDS)
async def test_every_operation_of_the_contract_is_routed(
    operation_id: str, name: str, method: str, path: str
) -> None:
    app = create_app(Settings())
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
        answer = await client.request(method, path)
    # Routed: admitted or refused by the operation's security, or validated, never unknown.
    assert answer.status_code not in (404, 405), (operation_id, answer.text)


def test_the_implementation_has_every_operation_of_the_interface() -> None:
    assert GatewayServiceInterface in GatewayApi.__mro__
    assert not inspect.isabstract(GatewayApi)
