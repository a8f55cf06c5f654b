"""`accord up --mock SERVICE`: the stack with one service replaced by the HTTP mock of its
OpenAPI contract, the others real."""

from __future__ import annotations

import httpx
import pytest

from tests.e2e.support import StartStack

pytestmark = pytest.mark.emulator


async def test_a_mocked_service_answers_from_its_contract_while_the_others_run_for_real(
    start_stack: StartStack,
) -> None:
    stack = await start_stack(mock=("notification",))
    notification, user = stack.config.url("notification"), stack.config.url("user")

    async with httpx.AsyncClient(timeout=10) as http:
        listed = await http.get(
            f"{notification}/api/v1/notifications", headers={"Authorization": "Bearer any"}
        )
        not_in_contract = await http.get(f"{notification}/docs")
        real_ready = await http.get(f"{user}/health/ready")
        real_docs = await http.get(f"{user}/docs/")

    # The mock answers the contract's example, whatever the token; the real service would
    # have refused it (401).
    assert listed.status_code == 200
    assert listed.json()["items"][0]["eventId"] == "1c2d3e4f-5a6b-4c7d-8e9f-0a1b2c3d4e5f"
    assert not_in_contract.status_code == 404  # no docs pages: only what the contract says
    assert real_ready.status_code == 200
    assert real_docs.status_code == 200
