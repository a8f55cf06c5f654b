"""The pact the user service holds the auth service to (`pacts/user-service-auth-service.json`):
its roles client and its key-set fetcher over HTTP (`getUserRoles`, `getJwks` in
`contracts/openapi/auth-service.yaml`; the kit's client policy, `services/kit/auth_client.py`,
around the generated auth client), and the two events its queue receives
(`contracts/asyncapi/user-service.yaml`). The real client code talks to Pact's mock server;
the real consumer and handlers take each message from a queue subscribed as the contract says.
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Final

import httpx
import pytest
from anyio.from_thread import BlockingPortal
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pact import Pact

from generated.events import models as events
from services.kit.auth_client import AuthClient, ClientPolicy
from services.kit.events import Message, decode
from services.kit.tokens import (
    JwksKeySource,
    SigningKey,
    TokenIssuer,
    TokenVerifier,
)
from services.kit.topology import Topology
from services.user import consumers
from services.user.domain import ProfileStatus
from services.user.roles import AuthServiceRoles
from services.user.storage import SqlUserStore
from tests.contract.pact import examples
from tests.contract.pact.support import (
    AUTH_SERVICE,
    USER_SERVICE,
    AuthClientInteractions,
    RecordProperty,
    assert_handled,
    auth_client_pact,
    check_committed,
    pact_between,
    pact_file_name,
    sns_message,
    subscribed,
)

pytestmark = [pytest.mark.contract, pytest.mark.conformance("user", "pacts")]

QUEUE: Final = "accord-user-service"
SERVICE_API_KEY: Final = "user-service-api-key-in-the-pact"
ISSUER: Final = "http://auth.pact.test"
AUDIENCE: Final = "accord"
# Derived from a fixed seed, so the key set in the pact (its `kid` and `x`) never changes.
SIGNING_KEY: Final = SigningKey(
    Ed25519PrivateKey.from_private_bytes(hashlib.sha256(b"accord pact signing key").digest())
)


def http_pact() -> Pact:
    """What the user service's HTTP clients need from the auth service."""
    return auth_client_pact(
        USER_SERVICE,
        AuthClientInteractions(
            admin_roles="a request for the roles of an admin",
            unknown_roles="a request for the roles of an unknown user",
            key_set="a request for the key set that verifies access tokens",
        ),
        SERVICE_API_KEY,
        SIGNING_KEY,
    )


def message_pact() -> Pact:
    """The events the user service's queue receives from the auth service."""
    pact = pact_between(USER_SERVICE, AUTH_SERVICE)
    examples.user_created(pact)
    examples.user_deactivated(pact)
    return pact


async def test_the_user_service_clients_read_every_answer_they_hold_the_auth_service_to(
    record_property: RecordProperty,
) -> None:
    pact = http_pact()
    with pact.serve() as server:  # on leaving, fails on any request unmatched or never made
        base_url = str(server.url)
        async with httpx.AsyncClient(base_url=base_url) as http:
            # The production policy, asking once (a retry would be a request the pact lacks).
            policy = ClientPolicy(timeout=2.0, retries=0, cache_seconds=0)
            auth = AuthClient.over(http, policy, service_api_key=SERVICE_API_KEY)
            roles = AuthServiceRoles(auth)
            admin_roles = await roles.roles(uuid.UUID(examples.USER_ID))
            unknown_roles = await roles.roles(uuid.UUID(examples.UNKNOWN_USER_ID))
            keys = JwksKeySource(auth.jwks)
            verifier = TokenVerifier(keys, issuer=ISSUER, audience=AUDIENCE)
            issuer = TokenIssuer(
                SIGNING_KEY, issuer=ISSUER, audience=AUDIENCE, ttl=timedelta(minutes=15)
            )
            claims = await verifier.verify(issuer.issue(examples.USER_ID, ["user"]).token)

    assert admin_roles == frozenset({"admin"})
    assert unknown_roles is None
    assert claims.subject == examples.USER_ID
    record_property("cases", len(list(pact.interactions("HTTP"))))


async def _receive(directory: Path, topology: Topology, message: Message) -> None:
    """Put the message on a fresh user service's queue, then check what its handler did."""
    event = decode(message)
    expected: tuple[ProfileStatus, str | None]
    match event:
        case events.UserCreatedPayload():
            expected = (ProfileStatus.ACTIVE, str(event.email))
        case events.UserDeactivatedPayload():
            expected = (ProfileStatus.DEACTIVATED, None)  # a tombstone
        case _:
            raise AssertionError(f"the user service receives no {event.eventType} events")
    store = SqlUserStore(f"sqlite:///{directory / f'user-{uuid.uuid4().hex}.db'}")
    await store.migrate()
    try:
        by_type = consumers.event_handlers(store, lambda: datetime.now(UTC))
        async with subscribed(
            topology, QUEUE, partial(consumers.subscribe, handlers_by_type=by_type)
        ) as queue:
            await queue.deliver(message)
        profile = await store.profiles.get(event.userId)
    finally:
        await store.dispose()
    assert profile is not None, f"{event.eventType} left no profile"
    assert (profile.status, profile.email) == expected
    assert profile.last_sequence == event.sequence


def test_the_user_service_handles_every_event_it_holds_the_auth_service_to(
    portal: BlockingPortal, tmp_path: Path, topology: Topology, record_property: RecordProperty
) -> None:
    pact = message_pact()

    def handle(body: str | bytes | None, metadata: dict[str, object]) -> None:
        portal.call(partial(_receive, tmp_path, topology, sns_message(body, metadata)))

    handled = assert_handled(pact, handle)

    record_property("cases", handled)


def test_the_committed_user_service_pact_is_what_these_tests_define(tmp_path: Path) -> None:
    http_pact().write_file(tmp_path, overwrite=True)
    message_pact().write_file(tmp_path)  # merged into the same file: a V4 pact mixes kinds

    check_committed(tmp_path / pact_file_name(USER_SERVICE, AUTH_SERVICE))
