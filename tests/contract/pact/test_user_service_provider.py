"""The user service verifies, as provider, every HTTP pact its consumers hold it to (the
committed `pacts/`; the gateway's): the real app served by uvicorn answers each interaction,
with each provider state set up as it comes about (a profile from `user.created`, an address
through the API). A user service that renames a field its consumers read fails verification."""

from __future__ import annotations

from pathlib import Path

import pytest
from anyio.from_thread import BlockingPortal

from tests.contract.pact.support import (
    HTTP,
    USER_SERVICE,
    RecordProperty,
    assert_verified,
    failed_verification,
    held_interactions,
    held_to,
    serving,
)
from tests.contract.pact.test_broken_auth_service import RenamingField, answering_with
from tests.contract.pact.user_provider import http_verifier, running

pytestmark = [pytest.mark.contract, pytest.mark.conformance("user", "pacts")]


def test_the_user_service_satisfies_every_http_pact_its_consumers_hold(
    portal: BlockingPortal, tmp_path: Path, record_property: RecordProperty
) -> None:
    held = held_interactions(USER_SERVICE, HTTP)

    with (
        portal.wrap_async_context_manager(running(tmp_path)) as service,
        portal.wrap_async_context_manager(serving(service.app)) as url,
    ):
        assert_verified(held_to(http_verifier(service, portal, url), held))

    record_property("cases", len(held))


def test_a_user_service_that_renames_a_profile_field_fails_http_verification(
    portal: BlockingPortal, tmp_path: Path, record_property: RecordProperty
) -> None:
    held = held_interactions(USER_SERVICE, HTTP)

    with (
        portal.wrap_async_context_manager(running(tmp_path)) as service,
        portal.wrap_async_context_manager(
            serving(RenamingField(service.app, "displayName", "name"))
        ) as url,
    ):
        failures = failed_verification(held_to(http_verifier(service, portal, url), held))

    concerned = answering_with(held, "displayName")
    assert concerned, "no pact expects a `displayName` member: this mutation proves nothing"
    assert sorted(failure.interaction for failure in failures) == concerned
    assert all("missing the following keys: displayName" in f.detail for f in failures)
    record_property("cases", len(held))
