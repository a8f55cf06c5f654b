"""schemathesis over `contracts/openapi/notification-service.yaml`, with the service in-process
on a seeded log: every generated request (valid or not) gets an answer the contract describes,
never a 500, for every operation, in every phase `schemathesis.toml` enables per operation
(examples, coverage, fuzzing). The contract declares no links, so there is no stateful phase.

Each test runs once as a user and once as an admin (confirmed by a static role directory);
schemathesis also probes the log without credentials and with a wrong one, expecting 401.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from schemathesis.python import asgi

from services.notification.app import Adapters, create_app
from services.notification.mail import RecordingEmailSender
from services.notification.roles import StaticRoleDirectory
from services.notification.storage import SqlNotificationDatabase
from tests.contract.schemathesis.support import (
    Credential,
    RecordProperty,
    ServiceSlot,
    as_caller,
    load_contract,
)
from tests.contract.served import seed_notifications
from tests.notification.support import Tokens, settings_for

pytestmark = [pytest.mark.contract, pytest.mark.conformance("notification", "schemathesis")]

CALLERS = ("user", "admin")
# Made here, not by the fixture: the tokens' key must exist before the service does.
TOKENS = Tokens()
SLOT = ServiceSlot("notification")

schema = load_contract("notification")
schema.app = SLOT


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The notification service on a seeded SQLite log, in schemathesis's ASGI event loop."""
    database_url = f"sqlite:///{tmp_path_factory.mktemp('notification-contract') / 'log.db'}"
    asyncio.run(seed_notifications(database_url))
    # The app (and its lifespan) runs on schemathesis's event loop, so the adapters are built
    # here and connect only there.
    SLOT.app = create_app(
        settings_for(database_url),
        adapters=Adapters(
            database=SqlNotificationDatabase(database_url),
            sender=RecordingEmailSender(),
            tokens=TOKENS.verifier(),
            roles=StaticRoleDirectory({TOKENS.admin_id: frozenset({"user", "admin"})}),
            consumer=None,
        ),
    )
    with asgi.get_client(SLOT):  # starts the app's lifespan
        pass
    yield
    asgi.shutdown_lifespans()
    SLOT.app = None


@pytest.fixture
def cases(service: None, record_property: RecordProperty) -> Iterator[None]:
    """Records how many requests the test made, as the `cases` property."""
    with SLOT.counting(record_property):
        yield


def credential(caller: str) -> Credential:
    """The caller's `Authorization` value."""
    token = TOKENS.admin() if caller == "admin" else TOKENS.user()
    return lambda case: f"Bearer {token}"


@pytest.mark.parametrize("caller", CALLERS)
@schema.parametrize()
@pytest.mark.usefixtures("cases")
def test_every_operation_conforms_to_the_contract_and_never_answers_500(
    case: Any, caller: str
) -> None:
    with as_caller(case, credential(caller)):
        response = case.call_and_validate()

    assert response.status_code < 500


def _links(node: object) -> list[object]:
    if isinstance(node, dict):
        found = [node["links"]] if "links" in node else []
        return found + [link for value in node.values() for link in _links(value)]
    if isinstance(node, list):
        return [link for item in node for link in _links(item)]
    return []


def test_the_contract_declares_no_links_so_it_has_no_stateful_phase() -> None:
    # Were links added, this suite would need the stateful test the auth and user suites have.
    assert _links(schema.raw_schema) == []
