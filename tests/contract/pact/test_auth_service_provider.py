"""The auth service verifies, as provider, every pact its consumers hold it to (the committed
`pacts/`): the real app served by uvicorn answers the HTTP interactions, with each provider
state set up in its own store; its outbox relay publishes the messages, each one announced by
the real operation, metadata (the SNS message attributes) included."""

from __future__ import annotations

from pathlib import Path

import pytest
from anyio.from_thread import BlockingPortal

from tests.contract.pact.auth_provider import http_verifier, message_verifier, running
from tests.contract.pact.support import (
    AUTH_SERVICE,
    HTTP,
    MESSAGES,
    RecordProperty,
    assert_verified,
    held_interactions,
    held_to,
    serving,
)

pytestmark = [pytest.mark.contract, pytest.mark.conformance("auth", "pacts")]


def test_the_auth_service_satisfies_every_http_pact_its_consumers_hold(
    portal: BlockingPortal, tmp_path: Path, record_property: RecordProperty
) -> None:
    held = held_interactions(AUTH_SERVICE, HTTP)

    with (
        portal.wrap_async_context_manager(running(tmp_path)) as service,
        portal.wrap_async_context_manager(serving(service.app)) as url,
    ):
        assert_verified(held_to(http_verifier(service, portal, url), held))

    record_property("cases", len(held))


def test_the_auth_service_satisfies_every_message_pact_its_consumers_hold(
    portal: BlockingPortal, tmp_path: Path, record_property: RecordProperty
) -> None:
    held = held_interactions(AUTH_SERVICE, MESSAGES)

    with portal.wrap_async_context_manager(running(tmp_path)) as service:
        assert_verified(held_to(message_verifier(service, portal), held))

    record_property("cases", len(held))
