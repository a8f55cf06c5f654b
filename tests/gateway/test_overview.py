"""`getMyOverview` and `getUserOverview` over scripted auth and user services: the composed
answer, the caller's token on every call, the calls made at once, and every branch of partial
failure the contract describes (a part down, stalled past its deadline, 5xx, refused, pending;
the account down, stalled or refused). Every 200 is read with the contract's `Overview` model."""

from __future__ import annotations

import time
import uuid
from typing import Any

import httpx

from generated.gateway import models as api
from tests.gateway.conftest import (
    PROBLEMS,
    Answer,
    Gateway,
    Tokens,
    account,
    addresses,
    failing,
    gateway,
    me_paths,
    ok,
    profile,
    refused,
)


def overview_of(response: httpx.Response) -> api.Overview:
    assert response.status_code == 200, response.text
    return api.Overview.model_validate(response.json())


def problem_type(response: httpx.Response) -> str:
    assert response.headers["content-type"] == "application/problem+json", response.text
    kind: str = response.json()["type"]
    return kind.removeprefix(PROBLEMS)


def part_problems(overview: api.Overview) -> dict[str, tuple[str, int]]:
    return {
        problem.part.value: (problem.type.removeprefix(PROBLEMS), problem.status)
        for problem in overview.problems
    }


# --- complete -----------------------------------------------------------------------------------


async def test_my_overview_composes_account_profile_and_addresses_with_the_callers_token(
    running: Gateway,
) -> None:
    user_id = uuid.uuid4()
    running.everything_for(user_id)
    headers = running.headers(user_id)

    response = await running.http.get("/api/v1/me", headers=headers)

    overview = overview_of(response)
    assert str(overview.account.id) == str(user_id)
    assert overview.profile is not None
    assert overview.profile.displayName == "Ada Lovelace"
    assert overview.profileStatus is api.ProfileAvailability.available
    assert overview.addresses is not None
    assert [address.label for address in overview.addresses] == ["Home"]
    assert (overview.partial, overview.problems) == (False, [])
    forwarded = [request.headers["Authorization"] for request in running.auth.requests]
    forwarded += [request.headers["Authorization"] for request in running.user.requests]
    assert forwarded == [headers["Authorization"]] * 3


async def test_the_three_calls_are_made_at_once_so_the_answer_takes_the_slowest_not_the_sum(
    tokens: Tokens,
) -> None:
    user_id = uuid.uuid4()
    async with gateway(
        tokens, call_timeout_seconds=2.0, part_timeout_seconds=2.0, deadline_seconds=2.0
    ) as running:
        me, profile_path, addresses_path = me_paths(user_id)
        running.auth.on(me, ok(account(user_id), delay=0.4))
        running.user.on(profile_path, ok(profile(user_id), delay=0.4))
        running.user.on(addresses_path, ok(addresses(user_id), delay=0.4))

        started = time.perf_counter()
        response = await running.http.get("/api/v1/me", headers=running.headers(user_id))
        took = time.perf_counter() - started

    assert overview_of(response).partial is False
    assert took < 1.0  # the slowest is 0.4 s, the sum 1.2 s


# --- a part missing -----------------------------------------------------------------------------


async def test_a_user_service_that_is_down_gives_a_partial_overview_with_a_problem_per_part(
    running: Gateway,
) -> None:
    user_id = uuid.uuid4()
    me, profile_path, addresses_path = me_paths(user_id)
    running.auth.on(me, ok(account(user_id)))
    running.user.on(profile_path, refused())
    running.user.on(addresses_path, refused())

    response = await running.http.get("/api/v1/me", headers=running.headers(user_id))

    overview = overview_of(response)
    assert overview.partial is True
    assert (overview.profile, overview.addresses) == (None, None)
    assert overview.profileStatus is api.ProfileAvailability.unavailable
    assert part_problems(overview) == {
        "profile": ("dependency-unavailable", 503),
        "addresses": ("dependency-unavailable", 503),
    }
    assert "ConnectError" in overview.problems[0].detail
    assert len(running.user.asked(profile_path)) == 2  # the policy's one retry


async def test_a_part_slower_than_its_deadline_is_missing_and_the_rest_is_answered_in_time(
    tokens: Tokens,
) -> None:
    user_id = uuid.uuid4()
    async with gateway(
        tokens, call_timeout_seconds=1.0, call_retries=0, part_timeout_seconds=0.2
    ) as running:
        me, profile_path, addresses_path = me_paths(user_id)
        running.auth.on(me, ok(account(user_id)))
        running.user.on(profile_path, ok(profile(user_id)))
        running.user.on(addresses_path, ok(addresses(user_id), delay=5.0))

        started = time.perf_counter()
        response = await running.http.get("/api/v1/me", headers=running.headers(user_id))
        took = time.perf_counter() - started

    overview = overview_of(response)
    assert took < 2.0  # the stalled part alone would take 5 s
    assert overview.profile is not None
    assert overview.addresses is None
    assert overview.partial is True
    assert part_problems(overview) == {"addresses": ("dependency-unavailable", 503)}
    assert "part deadline of 0.2 s" in overview.problems[0].detail


async def test_the_whole_deadline_counts_the_callers_admission_and_cuts_a_part_short(
    tokens: Tokens,
) -> None:
    admin, user_id = uuid.uuid4(), uuid.uuid4()
    async with gateway(
        tokens,
        call_timeout_seconds=1.0,
        call_retries=0,
        part_timeout_seconds=0.5,
        deadline_seconds=0.6,
    ) as running:
        running.roles[admin] = frozenset({"user", "admin"})
        running.confirming.delay = 0.3  # of the 0.6 s, the parts have 0.3 s left
        script_user(running, user_id)
        running.user.on(user_paths(user_id)[1], ok(profile(user_id), delay=5.0))

        started = time.perf_counter()
        response = await running.http.get(
            f"/api/v1/users/{user_id}/overview", headers=running.headers(admin, ("admin",))
        )
        took = time.perf_counter() - started

    overview = overview_of(response)
    assert 0.55 < took < 2.0
    assert overview.profileStatus is api.ProfileAvailability.unavailable
    assert overview.addresses is not None
    assert part_problems(overview) == {"profile": ("dependency-unavailable", 503)}
    assert "deadline of 0.6 s" in overview.problems[0].detail


async def test_a_5xx_from_the_user_service_is_retried_then_the_part_is_missing(
    running: Gateway,
) -> None:
    user_id = uuid.uuid4()
    me, profile_path, addresses_path = me_paths(user_id)
    running.auth.on(me, ok(account(user_id)))
    running.user.on(profile_path, failing(503, "dependency-unavailable", retry_after=0))
    running.user.on(
        addresses_path, failing(500, "internal"), ok(addresses(user_id))
    )  # recovers on the retry

    response = await running.http.get("/api/v1/me", headers=running.headers(user_id))

    overview = overview_of(response)
    assert part_problems(overview) == {"profile": ("dependency-unavailable", 503)}
    assert overview.addresses is not None
    assert len(overview.addresses) == 1
    assert len(running.user.asked(profile_path)) == 2
    assert len(running.user.asked(addresses_path)) == 2


async def test_a_part_the_user_service_refuses_carries_its_problem(running: Gateway) -> None:
    user_id = uuid.uuid4()
    me, profile_path, addresses_path = me_paths(user_id)
    running.auth.on(me, ok(account(user_id)))
    running.user.on(profile_path, failing(403, "forbidden"))
    running.user.on(addresses_path, ok(addresses(user_id)))

    response = await running.http.get("/api/v1/me", headers=running.headers(user_id))

    overview = overview_of(response)
    assert part_problems(overview) == {"profile": ("forbidden", 403)}
    assert len(running.user.asked(profile_path)) == 1  # a refusal is not retried


async def test_an_answer_off_the_user_contract_is_a_missing_part_not_a_500(
    running: Gateway,
) -> None:
    user_id = uuid.uuid4()
    me, profile_path, addresses_path = me_paths(user_id)
    running.auth.on(me, ok(account(user_id)))
    running.user.on(profile_path, Answer(httpx.Response(200, text="<html>maintenance</html>")))
    running.user.on(addresses_path, ok({"items": [{"label": "no id"}]}))

    response = await running.http.get("/api/v1/me", headers=running.headers(user_id))

    overview = overview_of(response)
    assert part_problems(overview) == {
        "profile": ("dependency-unavailable", 503),
        "addresses": ("dependency-unavailable", 503),
    }


# --- pending ------------------------------------------------------------------------------------


async def test_a_pending_profile_is_reported_as_pending_with_no_addresses_and_not_partial(
    running: Gateway,
) -> None:
    user_id = uuid.uuid4()
    me, profile_path, addresses_path = me_paths(user_id)
    running.auth.on(me, ok(account(user_id)))
    pending = failing(404, "profile-pending", retry_after=1)
    running.user.on(profile_path, pending)
    running.user.on(addresses_path, pending)

    response = await running.http.get("/api/v1/me", headers=running.headers(user_id))

    overview = overview_of(response)
    assert overview.profileStatus is api.ProfileAvailability.pending
    assert (overview.profile, overview.addresses) == (None, [])
    assert (overview.partial, overview.problems) == (False, [])
    assert len(running.user.asked(profile_path)) == 1


async def test_a_pending_profile_hides_whatever_became_of_the_addresses(running: Gateway) -> None:
    user_id = uuid.uuid4()
    me, profile_path, addresses_path = me_paths(user_id)
    running.auth.on(me, ok(account(user_id)))
    running.user.on(profile_path, failing(404, "profile-pending"))
    running.user.on(addresses_path, refused())

    overview = overview_of(await running.http.get("/api/v1/me", headers=running.headers(user_id)))

    assert overview.profileStatus is api.ProfileAvailability.pending
    assert (overview.addresses, overview.partial) == ([], False)


# --- the account missing ------------------------------------------------------------------------


async def test_an_auth_service_that_is_down_is_503_with_retry_after(running: Gateway) -> None:
    user_id = uuid.uuid4()
    running.everything_for(user_id)
    running.auth.on("/api/v1/auth/me", refused())

    response = await running.http.get("/api/v1/me", headers=running.headers(user_id))

    assert response.status_code == 503
    assert problem_type(response) == "dependency-unavailable"
    assert response.headers["Retry-After"] == "5"
    assert "the auth service could not answer" in response.json()["detail"]


async def test_an_account_not_had_by_the_whole_deadline_is_503_by_the_deadline(
    tokens: Tokens,
) -> None:
    admin, user_id = uuid.uuid4(), uuid.uuid4()
    async with gateway(
        tokens,
        call_timeout_seconds=1.0,
        call_retries=0,
        part_timeout_seconds=0.5,
        deadline_seconds=0.6,
    ) as running:
        running.roles[admin] = frozenset({"user", "admin"})
        running.confirming.delay = 0.3
        script_user(running, user_id)
        running.auth.on(user_paths(user_id)[0], ok(account(user_id), delay=0.4))

        started = time.perf_counter()
        response = await running.http.get(
            f"/api/v1/users/{user_id}/overview", headers=running.headers(admin, ("admin",))
        )
        took = time.perf_counter() - started

    assert took < 2.0
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "5"
    assert "deadline of 0.6 s" in response.json()["detail"]


async def test_an_account_slower_than_its_part_deadline_is_503(tokens: Tokens) -> None:
    user_id = uuid.uuid4()
    async with gateway(
        tokens, call_timeout_seconds=1.0, call_retries=0, part_timeout_seconds=0.2
    ) as running:
        running.everything_for(user_id)
        running.auth.on("/api/v1/auth/me", ok(account(user_id), delay=5.0))

        started = time.perf_counter()
        response = await running.http.get("/api/v1/me", headers=running.headers(user_id))
        took = time.perf_counter() - started

    assert took < 2.0
    assert response.status_code == 503
    assert "part deadline of 0.2 s" in response.json()["detail"]


async def test_a_longer_retry_after_from_the_auth_service_is_passed_on(running: Gateway) -> None:
    user_id = uuid.uuid4()
    running.everything_for(user_id)
    running.auth.on("/api/v1/auth/me", failing(503, "dependency-unavailable", retry_after=30))

    response = await running.http.get("/api/v1/me", headers=running.headers(user_id))

    assert response.status_code == 503
    assert response.headers["Retry-After"] == "30"
    assert len(running.auth.asked("/api/v1/auth/me")) == 1  # 30 s is past the policy's pause


async def test_the_auth_services_refusal_of_the_caller_is_passed_through_as_401(
    running: Gateway,
) -> None:
    user_id = uuid.uuid4()
    running.everything_for(user_id)
    running.auth.on("/api/v1/auth/me", failing(401, "unauthenticated"))

    response = await running.http.get("/api/v1/me", headers=running.headers(user_id))

    assert response.status_code == 401
    assert problem_type(response) == "unauthenticated"
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


async def test_a_refusal_the_operation_does_not_document_is_503_not_passed_through(
    running: Gateway,
) -> None:
    user_id = uuid.uuid4()
    running.everything_for(user_id)
    running.auth.on("/api/v1/auth/me", failing(404, "not-found"))

    response = await running.http.get("/api/v1/me", headers=running.headers(user_id))

    assert response.status_code == 503
    assert problem_type(response) == "dependency-unavailable"
    assert "answered 404" in response.json()["detail"]


# --- getUserOverview ----------------------------------------------------------------------------


def user_paths(user_id: uuid.UUID) -> tuple[str, str, str]:
    return f"/api/v1/auth/users/{user_id}", *me_paths(user_id)[1:]


def script_user(running: Gateway, user_id: uuid.UUID, **account_fields: Any) -> None:
    account_path, profile_path, addresses_path = user_paths(user_id)
    running.auth.on(account_path, ok(account(user_id, **account_fields)))
    running.user.on(profile_path, ok(profile(user_id)))
    running.user.on(addresses_path, ok(addresses(user_id)))


async def test_an_admin_reads_anyones_overview_with_the_accounts_roles_and_status(
    running: Gateway,
) -> None:
    admin, user_id = uuid.uuid4(), uuid.uuid4()
    running.roles[admin] = frozenset({"user", "admin"})
    script_user(running, user_id, status="deactivated")
    headers = running.headers(admin, ("user", "admin"))

    response = await running.http.get(f"/api/v1/users/{user_id}/overview", headers=headers)

    overview = overview_of(response)
    assert overview.account.status is api.AccountStatus.deactivated
    assert overview.account.roles == [api.Role.user]
    assert (
        running.auth.asked(user_paths(user_id)[0])[0].headers["Authorization"]
        == (headers["Authorization"])
    )


async def test_the_owner_reads_their_own_overview(running: Gateway) -> None:
    user_id = uuid.uuid4()
    script_user(running, user_id)

    response = await running.http.get(
        f"/api/v1/users/{user_id}/overview", headers=running.headers(user_id)
    )

    assert overview_of(response).partial is False


async def test_another_user_is_refused_with_403_before_any_call_is_made(running: Gateway) -> None:
    user_id, other = uuid.uuid4(), uuid.uuid4()
    script_user(running, user_id)

    response = await running.http.get(
        f"/api/v1/users/{user_id}/overview", headers=running.headers(other)
    )

    assert response.status_code == 403
    assert problem_type(response) == "forbidden"
    assert running.auth.requests == running.user.requests == []


async def test_an_admin_the_auth_service_does_not_confirm_is_refused_with_403(
    running: Gateway,
) -> None:
    admin, user_id = uuid.uuid4(), uuid.uuid4()
    script_user(running, user_id)

    response = await running.http.get(
        f"/api/v1/users/{user_id}/overview", headers=running.headers(admin, ("user", "admin"))
    )

    assert response.status_code == 403


async def test_an_unknown_account_is_404_and_the_parts_are_not_waited_for(
    running: Gateway,
) -> None:
    admin, user_id = uuid.uuid4(), uuid.uuid4()
    running.roles[admin] = frozenset({"user", "admin"})
    account_path, profile_path, addresses_path = user_paths(user_id)
    running.auth.on(account_path, failing(404, "not-found"))
    running.user.on(profile_path, ok(profile(user_id), delay=5.0))
    running.user.on(addresses_path, ok(addresses(user_id), delay=5.0))

    started = time.perf_counter()
    response = await running.http.get(
        f"/api/v1/users/{user_id}/overview", headers=running.headers(admin, ("user", "admin"))
    )

    assert time.perf_counter() - started < 2.0  # the parts would take 5 s
    assert response.status_code == 404
    assert problem_type(response) == "not-found"


async def test_a_user_id_that_is_not_a_uuid_is_422_and_no_token_is_401(running: Gateway) -> None:
    bad_id = await running.http.get(
        "/api/v1/users/not-a-uuid/overview", headers=running.headers(uuid.uuid4(), ("admin",))
    )
    anonymous = await running.http.get("/api/v1/me")

    assert bad_id.status_code == 422
    assert bad_id.json()["errors"][0]["pointer"] == "/path/userId"
    assert anonymous.status_code == 401
    assert anonymous.headers["WWW-Authenticate"].startswith("Bearer")
    assert running.auth.requests == running.user.requests == []


# --- health -------------------------------------------------------------------------------------


async def test_readiness_follows_the_auth_service_only(running: Gateway) -> None:
    running.auth.on("/health/live", ok({"status": "ok"}), refused())
    running.user.on("/health/live", refused())

    ready = await running.http.get("/health/ready")
    not_ready = await running.http.get("/health/ready")
    live = await running.http.get("/health/live")

    assert (ready.status_code, ready.json()) == (
        200,
        {"status": "ok", "checks": {"authService": "ok"}},
    )
    assert (not_ready.status_code, not_ready.json()["checks"]) == (
        503,
        {"authService": "unavailable"},
    )
    assert (live.status_code, live.json()) == (200, {"status": "ok"})
