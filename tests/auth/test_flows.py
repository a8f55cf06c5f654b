"""Every flow of the auth contract through HTTP, on SQLite and on PostgreSQL, with the events
each one publishes."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta
from typing import Any

import argon2
import jwt
import pytest
from sqlalchemy import select

from generated.auth import models as api
from generated.events import models as events
from services.auth.domain import UnknownEmailError
from services.auth.grants import grant_role
from services.auth.storage import accounts, outbox
from services.kit.tokens import StaticKeySource, TokenVerifier
from services.kit.tracing import SpanStore
from tests.auth.conftest import PASSWORD, AppFactory, AuthClient, Bus, Clock, bearer

REGISTER = "/api/v1/auth/register"
REFRESH = "/api/v1/auth/refresh"
LOGOUT = "/api/v1/auth/logout"
ME = "/api/v1/auth/me"
VERIFY = "/api/v1/auth/email-verification"
VERIFY_CONFIRM = "/api/v1/auth/email-verification/confirm"
RESET = "/api/v1/auth/password-reset"
RESET_CONFIRM = "/api/v1/auth/password-reset/confirm"


def problem_type(response: Any) -> str:
    assert response.headers["content-type"] == "application/problem+json", response.text
    kind: str = response.json()["type"]
    return kind.removeprefix("https://accord.example/problems/")


def deactivate(user_id: object) -> str:
    return f"/api/v1/auth/users/{user_id}/deactivate"


def roles(user_id: object) -> str:
    return f"/api/v1/auth/users/{user_id}/roles"


# --- registration -------------------------------------------------------------------------


async def test_registration_answers_201_with_a_token_pair_and_publishes_user_created(
    auth: AuthClient, bus: Bus
) -> None:
    response = await auth.http.post(
        REGISTER, json={"email": "ada@example.com", "password": PASSWORD}
    )

    assert response.status_code == 201
    pair = api.TokenPair.model_validate(response.json())
    me = await auth.http.get(ME, headers=bearer(response.json()))
    assert me.json()["id"] == str(pair.userId)
    assert me.json()["roles"] == ["user"]
    [event] = await bus.wait_for(1)
    assert isinstance(event, events.UserCreatedPayload)
    assert event.userId == pair.userId
    assert event.email == "ada@example.com"
    assert event.sequence == 1


async def test_a_duplicate_email_in_another_case_is_refused_with_409(
    auth: AuthClient, bus: Bus
) -> None:
    await auth.register("grace@example.com")

    response = await auth.http.post(
        REGISTER, json={"email": "GRACE@Example.COM", "password": PASSWORD}
    )

    assert response.status_code == 409
    assert problem_type(response) == "email-taken"
    assert len(await bus.wait_for(1)) == 1


@pytest.mark.parametrize(
    ("body", "pointer"),
    [
        ({"email": "ada@example.com", "password": "too-short"}, "/body/password"),
        ({"email": "not-an-email", "password": PASSWORD}, "/body/email"),
        ({"email": "ada@example.com"}, "/body/password"),
        ({"email": "ada@example.com", "password": PASSWORD, "admin": True}, "/body/admin"),
    ],
    ids=["weak password", "bad email", "missing password", "unknown field"],
)
async def test_a_request_that_fails_the_contract_is_refused_with_422_pointing_at_the_value(
    auth: AuthClient, bus: Bus, body: dict[str, Any], pointer: str
) -> None:
    response = await auth.http.post(REGISTER, json=body)

    assert response.status_code == 422
    assert problem_type(response) == "validation-error"
    assert pointer in [issue["pointer"] for issue in response.json()["errors"]]
    assert await bus.settle(0.05) == []


async def test_a_body_that_is_not_json_is_refused_with_400(auth: AuthClient) -> None:
    response = await auth.http.post(
        REGISTER, content=b'{"email": ', headers={"Content-Type": "application/json"}
    )

    assert response.status_code == 400
    assert problem_type(response) == "malformed-request"


# --- login ----------------------------------------------------------------------------------


async def test_login_answers_a_new_token_pair_for_the_right_password(auth: AuthClient) -> None:
    user = await auth.register("ada@example.com")

    response = await auth.login("ADA@example.com")

    assert response.status_code == 200
    pair = response.json()
    assert pair["userId"] == user["userId"]
    assert pair["refreshToken"] != user["refreshToken"]
    assert (await auth.http.get(ME, headers=bearer(pair))).status_code == 200


async def test_a_wrong_password_and_an_unknown_email_are_answered_alike_with_401(
    auth: AuthClient,
) -> None:
    await auth.register("ada@example.com")

    wrong_password = await auth.login("ada@example.com", "not-the-password")
    unknown_email = await auth.login("nobody@example.com")

    for response in (wrong_password, unknown_email):
        assert response.status_code == 401
        assert problem_type(response) == "invalid-credentials"
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert wrong_password.json()["detail"] == unknown_email.json()["detail"]


async def test_past_the_account_limit_every_login_is_refused_with_429_even_the_right_one(
    start_auth: AppFactory,
) -> None:
    async with start_auth(login_failures_per_account_address=3) as auth:
        await auth.register("ada@example.com")
        for _ in range(3):
            assert (await auth.login("ada@example.com", "wrong-password")).status_code == 401

        right = await auth.login("ada@example.com")
        other = await auth.register()
        unaffected = await auth.login(other["email"])

    assert right.status_code == 429
    assert problem_type(right) == "rate-limited"
    assert 0 < int(right.headers["Retry-After"]) <= auth.settings.login_failure_window_seconds
    assert unaffected.status_code == 200


async def test_login_failures_from_one_address_are_limited_across_accounts(
    start_auth: AppFactory,
) -> None:
    async with start_auth(login_failures_per_address=3, client=("203.0.113.7", 4000)) as auth:
        for index in range(3):
            response = await auth.login(f"guess-{index}@example.com", "wrong-password")
            assert response.status_code == 401
        user = await auth.register()

        refused = await auth.login(user["email"])

    assert refused.status_code == 429
    assert "Retry-After" in refused.headers


async def test_a_login_resets_nothing_for_a_guesser_but_clears_the_owners_failures(
    start_auth: AppFactory,
) -> None:
    async with start_auth(login_failures_per_account_address=3) as auth:
        await auth.register("ada@example.com")
        for _ in range(2):
            await auth.login("ada@example.com", "wrong-password")
        assert (await auth.login("ada@example.com")).status_code == 200

        # The count started again: two more failures are still below the limit.
        for _ in range(2):
            await auth.login("ada@example.com", "wrong-password")
        assert (await auth.login("ada@example.com")).status_code == 200


async def test_login_rehashes_a_password_hashed_with_weaker_parameters(
    start_auth: AppFactory,
) -> None:
    async with start_auth() as auth:
        await auth.register("ada@example.com")
    async with start_auth(argon2_time_cost=2) as auth:
        assert (await auth.login("ada@example.com")).status_code == 200
        async with auth.adapters.store.sessions() as session:
            stored = (
                await session.execute(
                    accounts.select().where(accounts.c.email_key == "ada@example.com")
                )
            ).one()

        assert argon2.extract_parameters(stored.password_hash).time_cost == 2
        assert (await auth.login("ada@example.com")).status_code == 200


# --- refresh and logout ---------------------------------------------------------------------


async def test_refresh_rotates_the_token_and_the_spent_one_is_refused(auth: AuthClient) -> None:
    user = await auth.register()

    first = await auth.http.post(REFRESH, json={"refreshToken": user["refreshToken"]})
    second = await auth.http.post(REFRESH, json={"refreshToken": first.json()["refreshToken"]})

    assert first.status_code == 200
    assert second.status_code == 200
    assert (
        len({user["refreshToken"], first.json()["refreshToken"], second.json()["refreshToken"]})
        == 3
    )
    assert (await auth.http.get(ME, headers=bearer(second.json()))).status_code == 200


async def test_reusing_a_spent_refresh_token_revokes_the_whole_family(auth: AuthClient) -> None:
    user = await auth.register()
    other_session = (await auth.login(user["email"])).json()
    rotated = (await auth.http.post(REFRESH, json={"refreshToken": user["refreshToken"]})).json()

    reuse = await auth.http.post(REFRESH, json={"refreshToken": user["refreshToken"]})
    legitimate = await auth.http.post(REFRESH, json={"refreshToken": rotated["refreshToken"]})
    unrelated = await auth.http.post(REFRESH, json={"refreshToken": other_session["refreshToken"]})

    assert reuse.status_code == 401
    assert problem_type(reuse) == "invalid-refresh-token"
    assert legitimate.status_code == 401  # the thief and the victim both lose this family
    assert unrelated.status_code == 200  # another login is another family


async def test_an_expired_or_unknown_refresh_token_is_refused(
    auth: AuthClient, clock: Clock
) -> None:
    user = await auth.register()
    unknown = await auth.http.post(REFRESH, json={"refreshToken": "rf_" + "x" * 43})
    clock.advance(timedelta(seconds=auth.settings.refresh_token_ttl_seconds + 1))

    expired = await auth.http.post(REFRESH, json={"refreshToken": user["refreshToken"]})

    assert unknown.status_code == 401
    assert expired.status_code == 401
    assert expired.headers["WWW-Authenticate"].startswith("Bearer")


async def test_logout_revokes_the_family_and_answers_204_whatever_the_token(
    auth: AuthClient,
) -> None:
    user = await auth.register()
    rotated = (await auth.http.post(REFRESH, json={"refreshToken": user["refreshToken"]})).json()

    logout = await auth.http.post(LOGOUT, json={"refreshToken": user["refreshToken"]})
    again = await auth.http.post(LOGOUT, json={"refreshToken": user["refreshToken"]})
    unknown = await auth.http.post(LOGOUT, json={"refreshToken": "rf_" + "y" * 43})
    refresh = await auth.http.post(REFRESH, json={"refreshToken": rotated["refreshToken"]})

    assert [logout.status_code, again.status_code, unknown.status_code] == [204, 204, 204]
    assert refresh.status_code == 401


# --- account, verification ------------------------------------------------------------------


async def test_me_answers_the_callers_account_as_the_contract_describes(auth: AuthClient) -> None:
    user = await auth.register("Ada.Lovelace@example.com")

    response = await auth.http.get(ME, headers=bearer(user))

    account = api.Account.model_validate(response.json())
    assert str(account.id) == user["userId"]
    assert account.email == "Ada.Lovelace@example.com"
    assert account.emailVerified is False
    assert account.status is api.AccountStatus.active


async def test_a_verification_token_from_the_event_verifies_the_email_once(
    auth: AuthClient, bus: Bus
) -> None:
    user = await auth.register()

    requested = await auth.http.post(VERIFY, headers=bearer(user))
    [_, event] = await bus.wait_for(2)
    assert isinstance(event, events.EmailVerificationRequestedPayload)
    confirm = await auth.http.post(VERIFY_CONFIRM, json={"token": event.verificationToken})
    reused = await auth.http.post(VERIFY_CONFIRM, json={"token": event.verificationToken})
    after = await auth.http.post(VERIFY, headers=bearer(user))

    assert requested.status_code == 202
    assert event.email == user["email"]
    assert str(event.userId) == user["userId"]
    assert confirm.status_code == 204
    assert (await auth.http.get(ME, headers=bearer(user))).json()["emailVerified"] is True
    assert reused.status_code == 401
    assert problem_type(reused) == "invalid-token"
    assert after.status_code == 409
    assert problem_type(after) == "email-already-verified"


async def test_an_expired_verification_token_is_refused(
    auth: AuthClient, bus: Bus, clock: Clock
) -> None:
    user = await auth.register()
    await auth.http.post(VERIFY, headers=bearer(user))
    [_, event] = await bus.wait_for(2)
    assert isinstance(event, events.EmailVerificationRequestedPayload)
    clock.advance(timedelta(seconds=auth.settings.verification_token_ttl_seconds + 1))

    response = await auth.http.post(VERIFY_CONFIRM, json={"token": event.verificationToken})

    assert response.status_code == 401
    assert problem_type(response) == "invalid-token"


async def test_verification_requests_are_rate_limited_per_account(
    start_auth: AppFactory,
) -> None:
    async with start_auth(verification_requests_per_account=2) as auth:
        user = await auth.register()
        answers = [
            (await auth.http.post(VERIFY, headers=bearer(user))).status_code for _ in range(3)
        ]
        refused = await auth.http.post(VERIFY, headers=bearer(user))

    assert answers == [202, 202, 429]
    assert int(refused.headers["Retry-After"]) > 0


# --- password reset -------------------------------------------------------------------------


async def test_a_reset_request_answers_202_alike_and_publishes_only_for_an_account(
    auth: AuthClient, bus: Bus
) -> None:
    user = await auth.register("ada@example.com")

    known = await auth.http.post(RESET, json={"email": "ADA@example.com"})
    unknown = await auth.http.post(RESET, json={"email": "nobody@example.com"})

    assert (known.status_code, known.content) == (unknown.status_code, unknown.content)
    assert known.status_code == 202
    published = await bus.settle()
    assert [type(event) for event in published] == [
        events.UserCreatedPayload,
        events.PasswordResetRequestedPayload,
    ]
    assert str(published[1].userId) == user["userId"]


async def test_confirming_a_reset_sets_the_password_and_revokes_every_refresh_token(
    auth: AuthClient, bus: Bus
) -> None:
    user = await auth.register("ada@example.com")
    second_session = (await auth.login("ada@example.com")).json()
    await auth.http.post(RESET, json={"email": "ada@example.com"})
    [_, event] = await bus.wait_for(2)
    assert isinstance(event, events.PasswordResetRequestedPayload)

    confirm = await auth.http.post(
        RESET_CONFIRM, json={"token": event.resetToken, "newPassword": "a-brand-new-passphrase"}
    )
    reused = await auth.http.post(
        RESET_CONFIRM, json={"token": event.resetToken, "newPassword": "yet-another-passphrase"}
    )

    assert confirm.status_code == 204
    assert reused.status_code == 401
    assert problem_type(reused) == "invalid-token"
    for session in (user, second_session):
        refreshed = await auth.http.post(REFRESH, json={"refreshToken": session["refreshToken"]})
        assert refreshed.status_code == 401
    assert (await auth.login("ada@example.com")).status_code == 401
    assert (await auth.login("ada@example.com", "a-brand-new-passphrase")).status_code == 200


async def test_an_expired_reset_token_is_refused_and_a_weak_new_password_is_422(
    auth: AuthClient, bus: Bus, clock: Clock
) -> None:
    await auth.register("ada@example.com")
    await auth.http.post(RESET, json={"email": "ada@example.com"})
    [_, event] = await bus.wait_for(2)
    assert isinstance(event, events.PasswordResetRequestedPayload)

    weak = await auth.http.post(RESET_CONFIRM, json={"token": event.resetToken, "newPassword": "x"})
    clock.advance(timedelta(seconds=auth.settings.reset_token_ttl_seconds + 1))
    expired = await auth.http.post(
        RESET_CONFIRM, json={"token": event.resetToken, "newPassword": "a-brand-new-passphrase"}
    )

    assert weak.status_code == 422
    assert expired.status_code == 401
    assert (await auth.login("ada@example.com")).status_code == 200


async def test_reset_requests_are_rate_limited_per_email_whether_or_not_it_exists(
    start_auth: AppFactory,
) -> None:
    async with start_auth(reset_requests_per_email=2) as auth:
        answers = [
            (await auth.http.post(RESET, json={"email": "nobody@example.com"})).status_code
            for _ in range(3)
        ]

    assert answers == [202, 202, 429]


# --- deactivation ---------------------------------------------------------------------------


async def test_self_deactivation_revokes_tokens_refuses_logins_and_publishes_once(
    auth: AuthClient, bus: Bus
) -> None:
    user = await auth.register("ada@example.com")
    admin = await auth.admin()

    first = await auth.http.post(deactivate(user["userId"]), headers=bearer(user))
    again_by_owner = await auth.http.post(deactivate(user["userId"]), headers=bearer(user))
    again_by_admin = await auth.http.post(deactivate(user["userId"]), headers=bearer(admin))

    assert first.status_code == 204
    assert again_by_owner.status_code == 401  # a deactivated account's token acts no more
    assert again_by_admin.status_code == 204
    right_password = await auth.login("ada@example.com")
    wrong_password = await auth.login("ada@example.com", "not-the-password")
    assert right_password.status_code == 403
    assert problem_type(right_password) == "account-deactivated"
    assert wrong_password.status_code == 401  # nothing is revealed without the password
    refresh = await auth.http.post(REFRESH, json={"refreshToken": user["refreshToken"]})
    assert refresh.status_code == 401
    assert (await auth.http.get(ME, headers=bearer(user))).json()["status"] == "deactivated"
    published = [event for event in await bus.settle() if str(event.userId) == user["userId"]]
    assert [type(event) for event in published] == [
        events.UserCreatedPayload,
        events.UserDeactivatedPayload,
    ]
    assert published[1].email == "ada@example.com"


async def test_an_admin_deactivates_anyone_and_a_user_only_themselves(auth: AuthClient) -> None:
    admin = await auth.admin()
    alice, bob = await auth.register(), await auth.register()

    by_other_user = await auth.http.post(deactivate(alice["userId"]), headers=bearer(bob))
    anonymous = await auth.http.post(deactivate(alice["userId"]))
    by_admin = await auth.http.post(deactivate(alice["userId"]), headers=bearer(admin))
    unknown = await auth.http.post(deactivate(uuid.uuid4()), headers=bearer(admin))
    bad_id = await auth.http.post(deactivate("not-a-uuid"), headers=bearer(admin))

    assert by_other_user.status_code == 403
    assert problem_type(by_other_user) == "forbidden"
    assert anonymous.status_code == 401
    assert anonymous.headers["WWW-Authenticate"].startswith("Bearer")
    assert by_admin.status_code == 204
    assert (await auth.login(alice["email"])).status_code == 403
    assert unknown.status_code == 404
    assert bad_id.status_code == 422
    assert bad_id.json()["errors"][0]["pointer"] == "/path/userId"


# --- roles ----------------------------------------------------------------------------------


async def test_roles_are_read_with_the_service_key_or_as_an_admin_only(auth: AuthClient) -> None:
    admin = await auth.admin()
    user = await auth.register()
    key = auth.settings.service_api_key.get_secret_value()

    as_service = await auth.http.get(roles(user["userId"]), headers={"X-API-Key": key})
    as_admin = await auth.http.get(roles(admin["userId"]), headers=bearer(admin))
    anonymous = await auth.http.get(roles(user["userId"]))
    wrong_key = await auth.http.get(roles(user["userId"]), headers={"X-API-Key": key + "x"})
    as_user = await auth.http.get(roles(user["userId"]), headers=bearer(user))
    unknown = await auth.http.get(roles(uuid.uuid4()), headers={"X-API-Key": key})

    assert as_service.status_code == 200
    assert as_service.json() == {"userId": user["userId"], "roles": ["user"]}
    assert as_admin.json()["roles"] == ["admin", "user"]
    assert anonymous.status_code == 401
    assert wrong_key.status_code == 401
    assert as_user.status_code == 403
    assert unknown.status_code == 404


async def test_only_an_admin_replaces_roles(auth: AuthClient) -> None:
    admin = await auth.admin()
    user, other = await auth.register(), await auth.register()
    key = auth.settings.service_api_key.get_secret_value()
    body = {"roles": ["user", "admin"]}

    as_admin = await auth.http.put(roles(user["userId"]), json=body, headers=bearer(admin))
    as_user = await auth.http.put(roles(admin["userId"]), json=body, headers=bearer(other))
    as_service = await auth.http.put(roles(user["userId"]), json=body, headers={"X-API-Key": key})
    repeated = await auth.http.put(
        roles(user["userId"]), json={"roles": ["user", "user"]}, headers=bearer(admin)
    )
    empty = await auth.http.put(roles(user["userId"]), json={"roles": []}, headers=bearer(admin))
    unknown_role = await auth.http.put(
        roles(user["userId"]), json={"roles": ["root"]}, headers=bearer(admin)
    )
    unknown_user = await auth.http.put(roles(uuid.uuid4()), json=body, headers=bearer(admin))

    assert as_admin.status_code == 200
    assert as_admin.json() == {"userId": user["userId"], "roles": ["admin", "user"]}
    assert as_user.status_code == 403
    assert as_service.status_code == 401  # the service key does not grant writes
    assert [repeated.status_code, empty.status_code, unknown_role.status_code] == [422] * 3
    assert repeated.json()["errors"] == [
        {"pointer": "/body/roles", "message": "roles must not repeat"}
    ]
    assert unknown_user.status_code == 404
    relogin = (await auth.login(user["email"])).json()
    assert (await auth.http.get(ME, headers=bearer(relogin))).json()["roles"] == ["admin", "user"]


async def test_granting_a_role_from_the_command_line_refuses_an_unknown_email(
    auth: AuthClient,
) -> None:
    with pytest.raises(UnknownEmailError, match=re.escape("nobody@example.com")):
        await grant_role(auth.settings.database_url, "nobody@example.com", "admin")
    with pytest.raises(ValueError, match="unknown role 'root'"):
        await grant_role(auth.settings.database_url, "nobody@example.com", "root")


# --- events, keys, health ---------------------------------------------------------------------


async def test_events_about_one_user_carry_increasing_sequences_and_full_envelopes(
    auth: AuthClient, bus: Bus
) -> None:
    user = await auth.register("ada@example.com")
    await auth.http.post(VERIFY, headers=bearer(user))
    await auth.http.post(RESET, json={"email": "ada@example.com"})
    # The reset is issued after the answer (its timing must not tell whether the email is
    # known): wait for its event, so that the deactivation comes after it.
    await bus.wait_for(3)
    await auth.http.post(deactivate(user["userId"]), headers=bearer(user))

    published = await bus.wait_for(4)
    messages = bus.received

    assert [event.eventType for event in published] == [
        "user.created",
        "user.email.verification.requested",
        "user.password.reset.requested",
        "user.deactivated",
    ]
    assert [event.sequence for event in published] == [1, 2, 3, 4]
    assert len({event.eventId for event in published}) == 4
    assert {event.source for event in published} == {"auth-service"}
    assert {str(event.userId) for event in published} == {user["userId"]}
    for event, message in zip(published, messages, strict=True):
        assert message.attributes["eventType"] == event.eventType
        assert message.attributes["source"] == "auth-service"
        assert message.attributes["schemaVersion"] == event.schemaVersion == "1.0.0"
        assert event.timestamp.tzinfo is not None


async def test_a_requests_traceparent_travels_with_the_events_it_causes(
    auth: AuthClient, bus: Bus
) -> None:
    traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

    await auth.http.post(
        REGISTER,
        json={"email": "ada@example.com", "password": PASSWORD},
        headers={"traceparent": traceparent},
    )
    await auth.http.post(
        REGISTER,
        json={"email": "grace@example.com", "password": PASSWORD},
        headers={"traceparent": "not-a-trace"},
    )

    await bus.wait_for(2)
    assert bus.received[0].attributes["traceparent"] == traceparent
    assert "traceparent" not in bus.received[1].attributes


async def test_a_traced_request_stores_its_span_with_the_outbox_row_and_the_relay_publishes_in_it(
    auth: AuthClient, bus: Bus
) -> None:
    spans = SpanStore()
    auth.adapters.tracing.export_to(spans)
    trace_id = uuid.uuid4().hex

    await auth.http.post(
        REGISTER,
        json={"email": "ada@example.com", "password": PASSWORD},
        headers={"traceparent": f"00-{trace_id}-00f067aa0ba902b7-01"},
    )
    [published] = await bus.wait_for(1)

    async with auth.adapters.store.sessions() as session:
        [stored] = (await session.execute(select(outbox.c.attributes))).scalars().all()
    found = {span.name: span for span in spans.trace(trace_id)}
    request, relay = found["registerUser"], found["publish user.created"]
    assert stored["traceparent"] == f"00-{trace_id}-{request.span_id}-01"
    assert relay.parent_id == request.span_id
    assert relay.kind == "PRODUCER"
    assert relay.attributes["accord.event.id"] == str(published.eventId)
    assert bus.received[0].attributes["traceparent"] == f"00-{trace_id}-{relay.span_id}-01"
    [written] = [event for event in request.events if event[0] == "outbox.write"]
    assert written[2]["accord.event.type"] == "user.created"


async def test_the_published_key_set_verifies_issued_access_tokens(auth: AuthClient) -> None:
    user = await auth.register()

    response = await auth.http.get("/.well-known/jwks.json")
    verifier = TokenVerifier(
        StaticKeySource(response.json()),
        issuer=auth.settings.issuer,
        audience=auth.settings.audience,
    )
    claims = await verifier.verify(user["accessToken"])

    assert response.headers["Cache-Control"] == "public, max-age=25"
    assert claims.subject == user["userId"]
    assert claims.roles == ("user",)
    header = jwt.get_unverified_header(user["accessToken"])
    assert header["alg"] == "EdDSA"
    assert header["kid"] == response.json()["keys"][0]["kid"]


async def test_the_health_probes_answer_ok(auth: AuthClient) -> None:
    live = await auth.http.get("/health/live")
    ready = await auth.http.get("/health/ready")

    assert live.json() == {"status": "ok"}
    assert (ready.status_code, ready.json()) == (
        200,
        {"status": "ok", "checks": {"database": "ok"}},
    )


async def test_routing_errors_are_problems_with_the_allowed_methods_and_an_encoded_instance(
    auth: AuthClient,
) -> None:
    user_roles = roles(uuid.uuid4())

    wrong_method = await auth.http.delete(user_roles)
    unknown_path = await auth.http.get("/api/v1/auth/nothing/é here")

    assert wrong_method.status_code == 405
    assert problem_type(wrong_method) == "method-not-allowed"
    assert wrong_method.headers["Allow"] == "GET, PUT"  # the resource's methods, not one route's
    assert unknown_path.status_code == 404
    assert problem_type(unknown_path) == "not-found"
    assert unknown_path.json()["instance"] == "/api/v1/auth/nothing/%C3%A9%20here"
