"""The HTTP pact the notification service holds the auth service to
(`pacts/notification-service-auth-service-http.json`): its role directory and its key-set
fetcher (`getUserRoles`, `getJwks` in `contracts/openapi/auth-service.yaml`), the production
clients (`services/notification/roles.py` `AuthServiceRoleDirectory` and the key-set fetcher
`AuthClient.jwks`, both the kit's client policy in `services/kit/auth_client.py` around the
generated auth client) talking to Pact's mock server.

A pact of its own, beside the message pact (`pacts/notification-service-auth-service.json`):
one Pact holds one kind of interaction, and the file name tells the two apart. The auth
service verifies it with every other HTTP pact (`test_auth_service_provider.py`), and
`accord check` reads it to name the notification service when `getUserRoles` or `getJwks`
changes.
"""

from __future__ import annotations

import hashlib
import os
from datetime import timedelta
from pathlib import Path
from typing import Final

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pact import Pact

from services.kit.auth_client import AuthClient, ClientPolicy
from services.kit.tokens import (
    JwksKeySource,
    SigningKey,
    TokenIssuer,
    TokenVerifier,
)
from services.notification.roles import AuthServiceRoleDirectory
from tests.contract.pact import examples
from tests.contract.pact.support import (
    AUTH_SERVICE,
    NOTIFICATION_SERVICE,
    AuthClientInteractions,
    RecordProperty,
    auth_client_pact,
    check_committed,
    pact_file_name,
)

os.environ.setdefault("PACT_DO_NOT_TRACK", "true")

pytestmark = [pytest.mark.contract, pytest.mark.conformance("notification", "pacts")]

# The committed file: the Pact core names a pact `<consumer>-<provider>.json`, which the
# notification service's message pact already is.
COMMITTED_NAME: Final = "notification-service-auth-service-http.json"
SERVICE_API_KEY: Final = "notification-service-api-key-in-the-pact"
ISSUER: Final = "http://auth.pact.test"
AUDIENCE: Final = "accord"
# Derived from a fixed seed, so the key set in the pact (its `kid` and `x`) never changes.
SIGNING_KEY: Final = SigningKey(
    Ed25519PrivateKey.from_private_bytes(
        hashlib.sha256(b"accord notification pact signing key").digest()
    )
)


def http_pact() -> Pact:
    """What the notification service's HTTP clients need from the auth service."""
    return auth_client_pact(
        NOTIFICATION_SERVICE,
        AuthClientInteractions(
            admin_roles="the notification service asks for the roles of an admin",
            unknown_roles="the notification service asks for the roles of an unknown user",
            key_set="the notification service fetches the key set of access tokens",
        ),
        SERVICE_API_KEY,
        SIGNING_KEY,
    )


async def test_the_notification_service_clients_read_every_answer_they_hold_the_auth_service_to(
    record_property: RecordProperty,
) -> None:
    pact = http_pact()
    with pact.serve() as server:  # on leaving, fails on any request unmatched or never made
        base_url = str(server.url)
        async with httpx.AsyncClient(base_url=base_url) as http:
            # The production policy, asking once (a retry would be a request the pact lacks).
            policy = ClientPolicy(timeout=2.0, retries=0, cache_seconds=0)
            auth = AuthClient.over(http, policy, service_api_key=SERVICE_API_KEY)
            directory = AuthServiceRoleDirectory(auth)
            admin_roles = await directory.roles(examples.USER_ID)
            unknown_roles = await directory.roles(examples.UNKNOWN_USER_ID)
            keys = JwksKeySource(auth.jwks)
            verifier = TokenVerifier(keys, issuer=ISSUER, audience=AUDIENCE)
            issuer = TokenIssuer(
                SIGNING_KEY, issuer=ISSUER, audience=AUDIENCE, ttl=timedelta(minutes=15)
            )
            claims = await verifier.verify(issuer.issue(examples.USER_ID, ["admin"]).token)

    assert admin_roles == frozenset({"admin"})
    assert unknown_roles == frozenset()  # an unknown (or deactivated) user holds no role
    assert claims.subject == examples.USER_ID
    record_property("cases", len(list(pact.interactions("HTTP"))))


def test_the_committed_notification_service_http_pact_is_what_this_test_defines(
    tmp_path: Path,
) -> None:
    http_pact().write_file(tmp_path, overwrite=True)
    written = tmp_path / pact_file_name(NOTIFICATION_SERVICE, AUTH_SERVICE)

    check_committed(written.rename(tmp_path / COMMITTED_NAME))
