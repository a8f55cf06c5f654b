"""Who may do what, as the contract's security requirements say: the RBAC matrix of every
operation against every kind of caller, admin roles confirmed by the auth service, and what
happens when the auth service is down."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest

from services.kit.tokens import SigningKey, TokenIssuer
from tests.user.conftest import ADMIN_ROLES, AUDIENCE, HOME, ISSUER, UserService

OPERATIONS: dict[str, tuple[str, str, dict[str, Any] | None]] = {
    "listUsers": ("GET", "/api/v1/users", None),
    "getUserProfile": ("GET", "/api/v1/users/{user}", None),
    "updateUserProfile": ("PATCH", "/api/v1/users/{user}", {"firstName": "Ada"}),
    "listAddresses": ("GET", "/api/v1/users/{user}/addresses", None),
    "createAddress": ("POST", "/api/v1/users/{user}/addresses", dict(HOME)),
    "getAddress": ("GET", "/api/v1/users/{user}/addresses/{address}", None),
    "updateAddress": ("PATCH", "/api/v1/users/{user}/addresses/{address}", {"label": "Work"}),
    "deleteAddress": ("DELETE", "/api/v1/users/{user}/addresses/{address}", None),
}
CALLERS = ("owner", "other user", "admin", "no token", "expired token", "another issuer")
SUCCESS = {"createAddress": 201, "deleteAddress": 204}
ADMIN_ONLY = {"listUsers"}


def contract_status(operation: str, caller: str) -> int:
    """The status the contract states for `caller` calling `operation` on the owner's data."""
    if caller in ("no token", "expired token", "another issuer"):
        return 401
    if caller == "other user" or (caller == "owner" and operation in ADMIN_ONLY):
        return 403
    return SUCCESS.get(operation, 200)


@dataclass(frozen=True)
class Target:
    user: uuid.UUID
    address: str


async def call(
    service: UserService, operation: str, target: Target, headers: dict[str, str]
) -> Any:
    method, template, body = OPERATIONS[operation]
    url = template.format(user=target.user, address=target.address)
    return await service.http.request(method, url, json=body, headers=headers)


def credentials(service: UserService, caller: str, owner: uuid.UUID) -> dict[str, str]:
    tokens = service.tokens
    if caller == "owner":
        return tokens.headers(owner)
    if caller == "other user":
        return tokens.headers(uuid.uuid4())
    if caller == "admin":
        return service.admin()
    if caller == "expired token":
        return {"Authorization": f"Bearer {tokens.expired(owner)}"}
    if caller == "another issuer":
        return {"Authorization": f"Bearer {tokens.foreign(owner)}"}
    return {}


async def test_every_operation_answers_every_kind_of_caller_as_the_contract_states(
    service: UserService,
) -> None:
    owner = await service.register()
    expected: dict[tuple[str, str], int] = {}
    actual: dict[tuple[str, str], int] = {}
    for operation in OPERATIONS:
        for caller in CALLERS:
            address = await service.add_address(owner)  # a fresh one: deletes must find it
            response = await call(
                service,
                operation,
                Target(owner, address["id"]),
                credentials(service, caller, owner),
            )
            expected[operation, caller] = contract_status(operation, caller)
            actual[operation, caller] = response.status_code
            if response.status_code == 401:
                assert response.headers["www-authenticate"].startswith("Bearer")
                assert response.json()["type"].endswith("/unauthenticated")
            if response.status_code == 403:
                assert response.json()["type"].endswith("/forbidden")

    assert actual == expected


@pytest.mark.parametrize(
    "authorization",
    ["Basic YWRhOnNlY3JldA==", "Bearer", "Bearer not.a.jwt", "Bearer " + "x" * 9000],
    ids=["basic", "empty-bearer", "garbage", "oversized"],
)
async def test_a_malformed_authorization_header_is_401(
    service: UserService, authorization: str
) -> None:
    user_id = await service.register()

    response = await service.http.get(
        f"/api/v1/users/{user_id}", headers={"Authorization": authorization}
    )

    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith('Bearer realm="accord"')


async def test_a_token_signed_by_an_unknown_key_is_401(service: UserService) -> None:
    user_id = await service.register()
    stranger = TokenIssuer(
        SigningKey.generate(), issuer=ISSUER, audience=AUDIENCE, ttl=timedelta(minutes=5)
    )
    token = stranger.issue(str(user_id), ["user"]).token

    response = await service.http.get(
        f"/api/v1/users/{user_id}", headers={"Authorization": f"Bearer {token}"}
    )

    assert response.status_code == 401
    assert 'error="invalid_token"' in response.headers["www-authenticate"]


async def test_a_token_whose_subject_is_not_a_user_id_is_401(service: UserService) -> None:
    token = TokenIssuer(
        service.tokens.key, issuer=ISSUER, audience=AUDIENCE, ttl=timedelta(minutes=5)
    )

    response = await service.http.get(
        "/api/v1/users",
        headers={"Authorization": f"Bearer {token.issue('service-account', ['admin']).token}"},
    )

    assert response.status_code == 401


async def test_an_admin_whose_role_the_auth_service_revoked_is_refused(
    service: UserService,
) -> None:
    user_id = await service.register()
    service.roles.set(service.admin_id, ["user"])  # the token still claims admin

    profile = await service.http.get(f"/api/v1/users/{user_id}", headers=service.admin())
    listing = await service.http.get("/api/v1/users", headers=service.admin())

    assert profile.status_code == 403
    assert listing.status_code == 403


async def test_a_token_without_the_admin_claim_is_refused_even_if_the_auth_service_says_admin(
    service: UserService,
) -> None:
    user_id = await service.register()
    caller = uuid.uuid4()
    service.roles.set(caller, ADMIN_ROLES)

    response = await service.http.get(
        f"/api/v1/users/{user_id}", headers=service.tokens.headers(caller, ["user"])
    )

    assert response.status_code == 403
    assert service.roles.lookups == 0


async def test_the_owner_is_served_from_the_token_alone(service: UserService) -> None:
    user_id = await service.register()
    lookups = service.roles.lookups

    response = await service.http.get(
        f"/api/v1/users/{user_id}", headers=service.tokens.headers(user_id, ADMIN_ROLES)
    )

    assert response.status_code == 200
    assert service.roles.lookups == lookups


# --- the auth service is down -----------------------------------------------------------------


async def test_with_the_auth_service_down_self_service_keeps_working(
    service: UserService,
) -> None:
    user_id = await service.register()
    address = await service.add_address(user_id)
    owner = service.owner(user_id)
    service.roles.down = True

    profile = await service.http.get(f"/api/v1/users/{user_id}", headers=owner)
    patched = await service.http.patch(
        f"/api/v1/users/{user_id}", json={"firstName": "Ada"}, headers=owner
    )
    addresses = await service.http.get(f"/api/v1/users/{user_id}/addresses", headers=owner)
    one = await service.http.get(
        f"/api/v1/users/{user_id}/addresses/{address['id']}", headers=owner
    )
    created = await service.http.post(
        f"/api/v1/users/{user_id}/addresses", json=HOME, headers=owner
    )
    newcomer = uuid.uuid4()
    pending = await service.http.get(
        f"/api/v1/users/{newcomer}", headers=service.tokens.headers(newcomer)
    )

    assert [r.status_code for r in (profile, patched, addresses, one, created)] == [
        200,
        200,
        200,
        200,
        201,
    ]
    # Whether one's own profile is pending needs no one else's answer either.
    assert pending.status_code == 404
    assert pending.json()["type"].endswith("/profile-pending")


async def test_with_the_auth_service_down_every_admin_operation_answers_503(
    service: UserService,
) -> None:
    owner = await service.register()
    address = await service.add_address(owner)
    service.roles.down = True

    statuses = {}
    for operation in OPERATIONS:
        response = await call(service, operation, Target(owner, address["id"]), service.admin())
        statuses[operation] = response.status_code
        if response.status_code == 503:
            assert response.headers["retry-after"] == "5"
            assert response.json()["type"].endswith("/dependency-unavailable")

    assert statuses == dict.fromkeys(OPERATIONS, 503)


async def test_with_the_auth_service_down_a_non_admin_is_still_refused_with_403(
    service: UserService,
) -> None:
    owner = await service.register()
    service.roles.down = True

    response = await service.http.get(
        f"/api/v1/users/{owner}", headers=service.tokens.headers(uuid.uuid4())
    )

    assert response.status_code == 403
