"""schemathesis over `contracts/openapi/gateway-service.yaml`, with the gateway served on a port
in front of the real auth and user services, each on a port of its own
(`tests/contract/served.py` `composed_from`): no input makes the gateway answer 500, and every
answer conforms to the contract (status, content type, headers, body schema), for every
operation, in every phase `schemathesis.toml` enables per operation (examples, coverage,
fuzzing). The contract declares no links, so there is no stateful phase.

Generated user ids are mostly steered to users the services know (an active one with a profile
and an address, a deactivated one whose profile is a tombstone), so the checks meet complete
overviews, not only 404s. Each test runs once as the owner (the token of the user the path
names, where the services know them; else another user's, who is refused with 403) and once as
an admin (confirmed by the auth service); schemathesis also probes each operation without
credentials and with a wrong one, expecting 401.

Over HTTP rather than in schemathesis's ASGI loop: schemathesis ends an ASGI app's lifespan
between tests, and the gateway's lifespan closes its clients of the other services.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from services.gateway.app import create_app
from tests.contract.schemathesis.support import (
    Credential,
    RecordProperty,
    as_caller,
    load_contract,
)
from tests.contract.served import composed_from, uvicorn_serving

pytestmark = [pytest.mark.contract, pytest.mark.conformance("gateway", "schemathesis")]

CALLERS = ("owner", "admin")


@dataclass
class Known:
    """Who the running services know: each user's `Authorization`, and an admin's."""

    bearers: dict[str, str] = field(default_factory=dict)
    admin: str = ""
    # Whose token an owner's call uses when the path names no known user.
    anyone: str = ""
    # Where the gateway listens, and how many requests it was sent.
    url: str = ""
    requests: int = 0


KNOWN = Known()

schema = load_contract("gateway")


def _bearer(user: dict[str, Any]) -> str:
    return f"Bearer {user['accessToken']}"


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The gateway on a port, over the auth and user services with an active user (a
    profile, an address) and a deactivated one."""
    directory: Path = tmp_path_factory.mktemp("gateway-contract")
    with composed_from(f"sqlite:///{directory / 'auth.db'}", directory) as backends:
        active = backends.with_profile(backends.register())
        gone = backends.with_profile(backends.register())
        # Its tokens, taken before, still verify; the auth service now refuses them (401).
        deactivated = backends.deactivated()
        KNOWN.bearers = {user["userId"]: _bearer(user) for user in (active, gone, deactivated)}
        KNOWN.admin = backends.admin
        KNOWN.anyone = _bearer(backends.register())
        with uvicorn_serving(create_app(backends.gateway_settings())) as url:
            KNOWN.url = url
            yield
            KNOWN.url = ""


@pytest.fixture
def cases(service: None, record_property: RecordProperty) -> Iterator[None]:
    """Records how many requests the test made, as the `cases` property."""
    before = KNOWN.requests
    try:
        yield
    finally:
        record_property("cases", KNOWN.requests - before)


def credential(caller: str) -> Credential:
    """The caller's `Authorization` value: the admin's token, or the token of the user the
    path names (another user's where the services do not know that one, or the path names
    none)."""

    def header(case: Any) -> str:
        if caller == "admin":
            return KNOWN.admin
        named = str((case.path_parameters or {}).get("userId"))
        return KNOWN.bearers.get(named, KNOWN.anyone)

    return header


@schema.hook
def map_path_parameters(context: Any, path_parameters: dict[str, Any] | None) -> Any:
    """Two generated user ids in three become a known user; ids that are not UUIDs stay as
    they are, for the negative cases."""
    if not path_parameters or not KNOWN.bearers:
        return path_parameters
    try:
        generated = uuid.UUID(str(path_parameters.get("userId")))
    except ValueError:
        return path_parameters
    if generated.int % 3 == 0:
        return path_parameters
    known = sorted(KNOWN.bearers)
    return {**path_parameters, "userId": known[generated.int % len(known)]}


@pytest.mark.parametrize("caller", CALLERS)
@schema.parametrize()
@pytest.mark.usefixtures("cases")
def test_every_operation_conforms_to_the_contract_and_never_answers_500(
    case: Any, caller: str
) -> None:
    with as_caller(case, credential(caller)):
        KNOWN.requests += 1
        response = case.call_and_validate(base_url=KNOWN.url)

    # With every service up, not even 503: nothing the gateway depends on is missing.
    assert response.status_code < 500, response.text
