"""The pacts the gateway holds the auth and user services to, over HTTP
(`pacts/gateway-service-auth-service-http.json`, `pacts/gateway-service-user-service-http.json`):
the gateway as `build_adapters` composes it (the kit's caller security: the key set, an admin's
roles; the generated auth and user clients under the kit's client policy) answering overviews
while Pact's mock servers stand in for the two services.

- auth: `getJwks`, `getUserRoles` (an admin's, and an unknown user's: 404), `getCurrentAccount`
  and `getAccount`, the caller's bearer token forwarded;
- user: `getUserProfile` (200; 404 `profile-pending` with `Retry-After`) and `listAddresses`
  (200; 404 `profile-pending`), the caller's bearer token forwarded.

The auth service verifies its pact with every other HTTP pact (`test_auth_service_provider.py`);
the user service verifies its own (`test_user_service_provider.py`); `accord check` reads both to
name the gateway when a change breaks what it reads.
"""

from __future__ import annotations

import hashlib
import os
from datetime import timedelta
from pathlib import Path
from typing import Any, Final

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pact import Pact, match
from pydantic import SecretStr

from services.gateway.app import create_app
from services.gateway.settings import Settings
from services.kit.tokens import SigningKey, TokenIssuer
from tests.contract.pact import examples
from tests.contract.pact.support import (
    AUTH_SERVICE,
    GATEWAY_SERVICE,
    USER_SERVICE,
    AuthClientInteractions,
    RecordProperty,
    auth_client_pact,
    check_committed,
    pact_between,
    pact_file_name,
)

os.environ.setdefault("PACT_DO_NOT_TRACK", "true")

pytestmark = [pytest.mark.contract, pytest.mark.conformance("gateway", "pacts")]

AUTH_PACT: Final = "gateway-service-auth-service-http.json"
USER_PACT: Final = "gateway-service-user-service-http.json"
SERVICE_API_KEY: Final = "gateway-service-api-key-in-the-pact"
ISSUER: Final = "http://auth.pact.test"
AUDIENCE: Final = "accord"
# Derived from a fixed seed, so the key set in the pact (its `kid` and `x`) never changes.
SIGNING_KEY: Final = SigningKey(
    Ed25519PrivateKey.from_private_bytes(
        hashlib.sha256(b"accord gateway pact signing key").digest()
    )
)
# The admin is the examples' user (whose roles the kit's interactions ask for); the owner of
# the overviews and the user whose profile is pending are two others.
ADMIN_ID: Final = examples.USER_ID
OWNER_ID: Final = examples.OWNER_ID
PENDING_ID: Final = examples.PENDING_USER_ID
BEARER: Final = r"^Bearer [A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$"
PROFILE_PENDING: Final = "https://accord.example/problems/profile-pending"


# What a forwarded token looks like in the pacts: any JWT matches; the verifiers send real ones.
EXAMPLE_TOKEN: Final = "eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJleGFtcGxlIn0.c2lnbmF0dXJl"


def _bearer() -> Any:
    """The caller's own access token, forwarded as it came."""
    return match.regex(f"Bearer {EXAMPLE_TOKEN}", regex=BEARER)


def _issue(user_id: str, roles: list[str]) -> str:
    issuer = TokenIssuer(SIGNING_KEY, issuer=ISSUER, audience=AUDIENCE, ttl=timedelta(minutes=15))
    return issuer.issue(user_id, roles).token


def _account(user_id: str) -> dict[str, Any]:
    """What the gateway reads of an `Account`: every field its `Overview.account` needs."""
    return {
        "id": match.uuid(user_id),
        "email": match.regex(examples.EMAIL, regex=examples.EMAIL_PATTERN),
        "emailVerified": match.bool(True),
        "roles": match.each_like(examples.role("user"), min=1),
        "status": match.regex("active", regex=r"^(active|deactivated)$"),
        "createdAt": match.regex("2026-11-25T10:00:00Z", regex=examples.RFC3339),
    }


def _profile(user_id: str) -> dict[str, Any]:
    """What the gateway reads of a `Profile`."""
    return {
        "id": match.uuid(user_id),
        "email": match.regex(examples.EMAIL, regex=examples.EMAIL_PATTERN),
        "displayName": match.str("Ada Lovelace"),
        "firstName": match.str("Ada"),
        "lastName": match.str("Lovelace"),
        "phone": match.regex("+447700900123", regex=r"^\+[1-9][0-9]{6,14}$"),
        "status": match.regex("active", regex=r"^(active|deactivated)$"),
        "createdAt": match.regex("2026-11-25T10:00:01Z", regex=examples.RFC3339),
        "updatedAt": match.regex("2026-11-25T10:20:00Z", regex=examples.RFC3339),
    }


def _address(user_id: str) -> dict[str, Any]:
    """What the gateway reads of an `Address`."""
    return {
        "id": match.uuid("3d6f0a2b-5c4e-4f1a-8b7c-9d0e1f2a3b4c"),
        "userId": match.uuid(user_id),
        "label": match.str("Home"),
        "line1": match.str("12 St James's Square"),
        "line2": match.str("Flat 3"),
        "city": match.str("London"),
        "region": match.str("Greater London"),
        "postalCode": match.str("SW1Y 4JH"),
        "country": match.regex("GB", regex=r"^[A-Z]{2}$"),
        "createdAt": match.regex("2026-11-25T10:30:00Z", regex=examples.RFC3339),
        "updatedAt": match.regex("2026-11-25T10:30:00Z", regex=examples.RFC3339),
    }


def auth_pact() -> Pact:
    """What the gateway needs from the auth service: the kit's caller security (the key set,
    an admin's roles, an unknown user's), and the accounts overviews are about."""
    pact = auth_client_pact(
        GATEWAY_SERVICE,
        AuthClientInteractions(
            admin_roles="the gateway confirms the roles of an admin",
            unknown_roles="the gateway asks for the roles of an unknown user",
            key_set="the gateway fetches the key set of access tokens",
        ),
        SERVICE_API_KEY,
        SIGNING_KEY,
    )
    # The caller's account: whoever's token is forwarded. The auth service's verifier forwards
    # the examples' admin's, so that is the account the state makes.
    (
        pact.upon_receiving("the gateway asks for the caller's account")
        .given(examples.ADMIN_EXISTS, userId=ADMIN_ID)
        .with_request("GET", "/api/v1/auth/me")
        .with_header("Authorization", _bearer())
        .will_respond_with(200)
        .with_body(_account(OWNER_ID), content_type="application/json")
    )
    for user_id, description in (
        (OWNER_ID, "the gateway asks an admin's view of a user's account"),
        (PENDING_ID, "the gateway asks an admin's view of a just registered user's account"),
    ):
        (
            pact.upon_receiving(description)
            .given(examples.ADMIN_EXISTS, userId=ADMIN_ID)
            .given(examples.USER_EXISTS, userId=user_id)
            .with_request("GET", f"/api/v1/auth/users/{user_id}")
            .with_header("Authorization", _bearer())
            .will_respond_with(200)
            .with_body(_account(user_id), content_type="application/json")
        )
    return pact


def user_pact() -> Pact:
    """What the gateway needs from the user service: a profile and its addresses, and the
    answer while a profile is still pending."""
    pact = pact_between(GATEWAY_SERVICE, USER_SERVICE)
    (
        pact.upon_receiving("the gateway asks for a user's profile")
        .given(examples.PROFILE_WITH_ADDRESS, userId=OWNER_ID)
        .with_request("GET", f"/api/v1/users/{OWNER_ID}")
        .with_header("Authorization", _bearer())
        .will_respond_with(200)
        .with_body(_profile(OWNER_ID), content_type="application/json")
    )
    (
        pact.upon_receiving("the gateway asks for a user's addresses")
        .given(examples.PROFILE_WITH_ADDRESS, userId=OWNER_ID)
        .with_request("GET", f"/api/v1/users/{OWNER_ID}/addresses")
        .with_header("Authorization", _bearer())
        .will_respond_with(200)
        .with_body(
            {"items": match.each_like(_address(OWNER_ID), min=1)}, content_type="application/json"
        )
    )
    for path, what in (
        (f"/api/v1/users/{PENDING_ID}", "profile"),
        (f"/api/v1/users/{PENDING_ID}/addresses", "addresses"),
    ):
        (
            pact.upon_receiving(
                f"the gateway asks for the {what} of a user whose profile is pending"
            )
            .given(examples.PROFILE_PENDING, userId=PENDING_ID)
            .with_request("GET", path)
            .with_header("Authorization", _bearer())
            .will_respond_with(404)
            .with_header("Retry-After", match.regex("1", regex=r"^[0-9]+$"))
            .with_body(
                {"type": PROFILE_PENDING, "title": match.str("Profile pending"), "status": 404},
                content_type="application/problem+json",
            )
        )
    return pact


def _settings(auth_url: str, user_url: str) -> Settings:
    return Settings(
        environment="local",
        auth_service_url=auth_url,
        auth_service_api_key=SecretStr(SERVICE_API_KEY),
        user_service_url=user_url,
        issuer=ISSUER,
        audience=AUDIENCE,
        # Each call once: a retry would be a request the pacts lack.
        call_retries=0,
        call_timeout_seconds=5,
        part_timeout_seconds=5,
        deadline_seconds=10,
    )


def _as(user_id: str, roles: list[str]) -> dict[str, str]:
    return {"Authorization": f"Bearer {_issue(user_id, roles)}"}


async def test_the_gateway_composes_overviews_from_every_answer_it_holds_the_services_to(
    record_property: RecordProperty,
) -> None:
    auth, user = auth_pact(), user_pact()
    # On leaving, each mock server fails on any request unmatched or never made.
    with auth.serve() as auth_server, user.serve() as user_server:
        app = create_app(_settings(str(auth_server.url), str(user_server.url)))
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://gateway"
            ) as http,
        ):
            mine = await http.get("/api/v1/me", headers=_as(OWNER_ID, ["user"]))
            as_admin = await http.get(
                f"/api/v1/users/{OWNER_ID}/overview", headers=_as(ADMIN_ID, ["user", "admin"])
            )
            pending = await http.get(
                f"/api/v1/users/{PENDING_ID}/overview", headers=_as(ADMIN_ID, ["user", "admin"])
            )
            # A token that claims a role the auth service does not confirm.
            unconfirmed = await http.get(
                f"/api/v1/users/{OWNER_ID}/overview",
                headers=_as(examples.UNKNOWN_USER_ID, ["user", "admin"]),
            )

    for complete in (mine, as_admin):
        assert complete.status_code == 200, complete.text
        body = complete.json()
        assert (body["partial"], body["profileStatus"], body["problems"]) == (
            False,
            "available",
            [],
        )
        assert body["profile"]["displayName"] == "Ada Lovelace"
        assert [address["label"] for address in body["addresses"]] == ["Home"]
    assert pending.status_code == 200, pending.text
    assert (pending.json()["profileStatus"], pending.json()["partial"]) == ("pending", False)
    assert unconfirmed.status_code == 403, unconfirmed.text
    record_property(
        "cases", len(list(auth.interactions("HTTP"))) + len(list(user.interactions("HTTP")))
    )


@pytest.mark.parametrize(
    ("name", "pact", "provider"),
    [(AUTH_PACT, auth_pact, AUTH_SERVICE), (USER_PACT, user_pact, USER_SERVICE)],
    ids=["auth-service", "user-service"],
)
def test_the_committed_gateway_pacts_are_what_this_test_defines(
    tmp_path: Path, name: str, pact: Any, provider: str
) -> None:
    pact().write_file(tmp_path, overwrite=True)
    written = tmp_path / pact_file_name(GATEWAY_SERVICE, provider)

    check_committed(written.rename(tmp_path / name))
