"""`accord mock` over real HTTP: the user service's production auth clients (`AuthServiceRoles`,
and `AuthClient.jwks` behind `JwksKeySource`: the kit's client policy around the generated auth
client) read the auth contract's examples from the mock served by uvicorn, and the command
itself starts and answers."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from harness.mock.http import build_app
from services.kit.auth_client import AuthClient, ClientPolicy
from services.kit.tokens import JwksKeySource
from services.user.roles import AuthServiceRoles
from tests.conftest import REPOSITORY
from tests.contract.served import free_port, uvicorn_serving

EXAMPLE_USER = uuid.UUID("6f1c1e0e-8f3e-4c1a-9d3e-2b7f4a6c9e10")


@pytest.fixture(scope="module")
def auth_mock() -> Iterator[str]:
    contract = REPOSITORY / "contracts" / "openapi" / "auth-service.yaml"
    with uvicorn_serving(build_app(contract)) as url:
        yield url


async def test_the_production_roles_client_reads_the_contracts_example_roles_from_the_mock(
    auth_mock: str,
) -> None:
    async with httpx.AsyncClient(base_url=auth_mock) as http:
        policy = ClientPolicy(retries=0)
        roles = AuthServiceRoles(AuthClient.over(http, policy, service_api_key="any-service-key"))
        assert await roles.roles(EXAMPLE_USER) == frozenset({"user"})
        assert await roles.reachable()


async def test_the_production_key_source_reads_the_contracts_example_key_set_from_the_mock(
    auth_mock: str,
) -> None:
    async with httpx.AsyncClient(base_url=auth_mock) as http:
        source = JwksKeySource(AuthClient.over(http, ClientPolicy(timeout=5)).jwks)
        key = await source.key("2026-11-a")
        assert isinstance(key, Ed25519PublicKey)
        assert await source.key("no-such-kid") is None


def run_accord_mock(arguments: list[str], probe: str) -> tuple[httpx.Response, str]:
    """Start `accord mock ARGUMENTS --port P`, GET `probe` from it, stop it: (answer, stderr)."""
    port = free_port()
    accord = Path(sys.executable).parent / "accord"  # the console script of this virtualenv
    process = subprocess.Popen(
        [str(accord), "mock", *arguments, "--port", str(port)],
        cwd=REPOSITORY,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        response: httpx.Response | None = None
        while time.monotonic() < deadline and process.poll() is None:
            try:
                response = httpx.get(f"http://127.0.0.1:{port}{probe}", timeout=2)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        assert response is not None, process.communicate(timeout=5)
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=30)
    return response, stderr


def test_accord_mock_auth_starts_and_answers_its_liveness_probe() -> None:
    response, stderr = run_accord_mock(["auth"], "/health/live")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert "GET /health/live → getLiveness 200 (example)" in stderr


def test_accord_mock_openapi_serves_a_contract_named_by_its_file(tmp_path: Path) -> None:
    contract = tmp_path / "copy.yaml"
    source = REPOSITORY / "contracts" / "openapi" / "notification-service.yaml"
    contract.write_text(source.read_text(encoding="utf-8"), encoding="utf-8")

    response, stderr = run_accord_mock(
        ["openapi", "--contract", str(contract), "--stateful"], "/api/v1/notifications"
    )

    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    assert "listNotifications 401" in stderr
