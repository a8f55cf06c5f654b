"""schemathesis over `contracts/openapi/user-service.yaml`, with the service in-process: no
input makes it answer 500, and every answer conforms to the contract (status, content type,
headers, body schema), for every operation, in every phase `schemathesis.toml` enables
(examples, coverage and fuzzing per operation; stateful through the contract's links).

Generated user ids are mostly steered to users the service knows (an active profile with an
address, a tombstone), so the checks meet 200s, 201s and 409s, not only 404s. Each test runs
once as the owner (a token whose `sub` is the user id in the path) and once as an admin
(confirmed by an in-memory roles table); schemathesis also probes each operation without
credentials and with a wrong one, expecting 401.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from schemathesis.python import asgi

from services.kit.events import encode
from services.kit.memory import InMemoryBroker, InMemoryEventConsumer
from services.kit.topology import QueueSpec
from services.user.app import Adapters, create_app
from services.user.roles import InMemoryRolesClient
from services.user.storage import SqlUserStore
from tests import factories
from tests.contract.schemathesis.support import (
    Credential,
    RecordProperty,
    ServiceSlot,
    as_caller,
    load_contract,
    run_stateful,
)
from tests.user.conftest import ADMIN_ROLES, FAST, HOME, Tokens, user_settings

pytestmark = [pytest.mark.contract, pytest.mark.conformance("user", "schemathesis")]

CALLERS = ("owner", "admin")


@dataclass
class Known:
    """What the running service holds: users and an address to steer generated ids to, and
    who may sign in."""

    users: list[str] = field(default_factory=list)
    address: str | None = None
    # Made here, not by the fixture: the tokens' key must exist before the service does.
    tokens: Tokens = field(default_factory=Tokens)
    admin_id: uuid.UUID = field(default_factory=uuid.uuid4)


KNOWN = Known()
SLOT = ServiceSlot("user")

schema = load_contract("user")
schema.app = SLOT


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The user service, running in schemathesis's ASGI event loop, with two users."""
    directory: Path = tmp_path_factory.mktemp("user-contract")
    database_url = f"sqlite:///{directory / 'user.db'}"
    tokens = KNOWN.tokens
    admin_id, active, tombstone = KNOWN.admin_id, uuid.uuid4(), uuid.uuid4()
    roles = InMemoryRolesClient({admin_id: ADMIN_ROLES, active: ["user"], tombstone: ["user"]})
    broker, queue = InMemoryBroker(), "contract-user-service"
    broker.create_queue(QueueSpec(queue))
    adapters = Adapters(
        store=SqlUserStore(database_url),
        verifier=tokens.verifier(),
        roles=roles,
        consumer=InMemoryEventConsumer(broker, queue, FAST),
    )
    SLOT.app = create_app(user_settings(database_url, queue=queue), adapters=adapters)
    with asgi.get_client(SLOT) as client:  # starts the app's lifespan (migrations, consumer)
        for event in (
            factories.user_created(active, email="ada@example.com"),
            factories.user_created(tombstone, email="bob@example.com"),
            factories.user_deactivated(tombstone),
        ):
            broker.send(queue, encode(event))
        deadline = time.monotonic() + 10
        while broker.depth(queue) and time.monotonic() < deadline:
            time.sleep(0.01)
        created = client.post(
            f"/api/v1/users/{active}/addresses",
            json=dict(HOME),
            headers=tokens.headers(active),
        )
        assert created.status_code == 201, created.text
    KNOWN.users[:] = [str(active), str(tombstone)]
    KNOWN.address = created.json()["id"]
    yield
    asgi.shutdown_lifespans()
    SLOT.app = None


@pytest.fixture
def cases(service: None, record_property: RecordProperty) -> Iterator[None]:
    """Records how many requests the test made, as the `cases` property."""
    with SLOT.counting(record_property):
        yield


def _uuid(value: object) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None


def credential(caller: str) -> Credential:
    """The caller's `Authorization` value: the admin's token, or the token of the user the
    path names (of some other user where the path names none, or no valid one)."""

    def header(case: Any) -> str:
        if caller == "admin":
            return KNOWN.tokens.headers(KNOWN.admin_id, ADMIN_ROLES)["Authorization"]
        owner = _uuid((case.path_parameters or {}).get("userId")) or uuid.uuid4()
        return KNOWN.tokens.headers(owner)["Authorization"]

    return header


@schema.hook
def map_path_parameters(context: Any, path_parameters: dict[str, Any] | None) -> Any:
    """Two generated user ids in three become a known user (and then, half the time, the
    generated address id becomes the known address); ids that are not UUIDs stay as they are,
    for the negative cases."""
    if not path_parameters or not KNOWN.users:
        return path_parameters
    generated = _uuid(path_parameters.get("userId"))
    if generated is None or generated.int % 3 == 0:
        return path_parameters
    steered = dict(path_parameters)
    steered["userId"] = KNOWN.users[generated.int % 3 - 1]
    address = _uuid(steered.get("addressId"))
    if address is not None and address.int % 2 and KNOWN.address is not None:
        steered["addressId"] = KNOWN.address
    return steered


@pytest.mark.parametrize("caller", CALLERS)
@schema.parametrize()
@pytest.mark.usefixtures("cases")
def test_every_operation_conforms_to_the_contract_and_never_answers_500(
    case: Any, caller: str
) -> None:
    with as_caller(case, credential(caller)):
        response = case.call_and_validate()

    assert response.status_code < 500


@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.usefixtures("cases")
def test_sequences_through_the_contracts_links_conform_to_the_contract(caller: str) -> None:
    if not schema.config.phases.stateful.enabled:
        pytest.skip("the stateful phase is off in schemathesis.toml")

    followed = run_stateful(schema, credential(caller))

    # Reading a profile, then updating it and listing its addresses; creating an address, then
    # reading, updating and deleting it.
    assert followed, "no scenario followed one of the contract's links"
