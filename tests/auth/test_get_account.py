"""`getAccount` (`GET /api/v1/auth/users/{userId}`): any account for an admin, one's own for its
owner, a deactivated one as it is; on SQLite and on PostgreSQL."""

from __future__ import annotations

import uuid
from typing import Any

from generated.auth import models as api
from tests.auth.conftest import AuthClient, bearer


def account(user_id: object) -> str:
    return f"/api/v1/auth/users/{user_id}"


def problem_type(response: Any) -> str:
    assert response.headers["content-type"] == "application/problem+json", response.text
    kind: str = response.json()["type"]
    return kind.removeprefix("https://accord.example/problems/")


async def test_the_owner_reads_their_own_account_as_get_current_account_answers_it(
    auth: AuthClient,
) -> None:
    user = await auth.register()

    response = await auth.http.get(account(user["userId"]), headers=bearer(user))
    me = await auth.http.get("/api/v1/auth/me", headers=bearer(user))

    assert response.status_code == 200, response.text
    assert response.json() == me.json()
    answered = api.Account.model_validate(response.json())
    assert str(answered.id) == user["userId"]
    assert answered.email == user["email"]
    assert answered.roles == [api.Role.user]
    assert answered.status is api.AccountStatus.active


async def test_an_admin_reads_anyone_s_account_with_its_roles(auth: AuthClient) -> None:
    admin = await auth.admin()
    user = await auth.register()

    of_user = await auth.http.get(account(user["userId"]), headers=bearer(admin))
    of_admin = await auth.http.get(account(admin["userId"]), headers=bearer(admin))

    assert of_user.status_code == 200, of_user.text
    assert of_user.json()["id"] == user["userId"]
    assert of_user.json()["roles"] == ["user"]
    assert of_admin.json()["roles"] == ["admin", "user"]


async def test_another_user_is_refused_with_403_and_no_token_with_401(auth: AuthClient) -> None:
    alice, bob = await auth.register(), await auth.register()

    by_other_user = await auth.http.get(account(alice["userId"]), headers=bearer(bob))
    anonymous = await auth.http.get(account(alice["userId"]))

    assert by_other_user.status_code == 403
    assert problem_type(by_other_user) == "forbidden"
    assert anonymous.status_code == 401
    assert anonymous.headers["WWW-Authenticate"].startswith("Bearer")


async def test_an_unknown_id_is_404_and_a_malformed_one_is_422(auth: AuthClient) -> None:
    admin = await auth.admin()

    unknown = await auth.http.get(account(uuid.uuid4()), headers=bearer(admin))
    bad_id = await auth.http.get(account("not-a-uuid"), headers=bearer(admin))

    assert unknown.status_code == 404
    assert problem_type(unknown) == "not-found"
    assert bad_id.status_code == 422
    assert bad_id.json()["errors"][0]["pointer"] == "/path/userId"


async def test_a_deactivated_account_is_answered_to_an_admin_with_status_deactivated(
    auth: AuthClient,
) -> None:
    admin = await auth.admin()
    user = await auth.register()
    deactivated = await auth.http.post(
        f"/api/v1/auth/users/{user['userId']}/deactivate", headers=bearer(admin)
    )
    assert deactivated.status_code == 204

    as_admin = await auth.http.get(account(user["userId"]), headers=bearer(admin))
    as_owner = await auth.http.get(account(user["userId"]), headers=bearer(user))

    assert as_admin.status_code == 200, as_admin.text
    assert as_admin.json()["status"] == "deactivated"
    assert as_admin.json()["email"] == user["email"]
    assert as_owner.status_code == 401
