"""`checkPasswordReset`: whether a reset token could be spent now, without spending it."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import TypeVar

from generated.events import models as events
from tests.auth.conftest import AuthClient, Bus, Clock, bearer

RESET = "/api/v1/auth/password-reset"
RESET_CHECK = "/api/v1/auth/password-reset/check"
RESET_CONFIRM = "/api/v1/auth/password-reset/confirm"
INVALID_TOKEN = "https://accord.example/problems/invalid-token"


E = TypeVar("E")


async def published(bus: Bus, kind: type[E], seconds: float = 10.0) -> E:
    """The latest event of `kind` on the bus, once there is one."""
    deadline = asyncio.get_running_loop().time() + seconds
    while not (found := [event for event in bus.events() if isinstance(event, kind)]):
        assert asyncio.get_running_loop().time() < deadline, f"no {kind.__name__} arrived"
        await asyncio.sleep(0.01)
    return found[-1]


async def _reset_token(auth: AuthClient, bus: Bus, email: str) -> str:
    await auth.http.post(RESET, json={"email": email})
    return (await published(bus, events.PasswordResetRequestedPayload)).resetToken


async def test_checking_a_fresh_reset_token_answers_204_and_leaves_it_usable(
    auth: AuthClient, bus: Bus
) -> None:
    await auth.register("ada@example.com")
    token = await _reset_token(auth, bus, "ada@example.com")

    first = await auth.http.post(RESET_CHECK, json={"token": token})
    second = await auth.http.post(RESET_CHECK, json={"token": token})
    confirm = await auth.http.post(
        RESET_CONFIRM, json={"token": token, "newPassword": "a-brand-new-passphrase"}
    )
    after = await auth.http.post(RESET_CHECK, json={"token": token})

    assert (first.status_code, first.content) == (204, b"")
    assert second.status_code == 204
    assert confirm.status_code == 204
    assert after.status_code == 401
    assert after.json()["type"] == INVALID_TOKEN
    assert (await auth.login("ada@example.com", "a-brand-new-passphrase")).status_code == 200


async def test_checking_an_expired_unknown_or_verification_token_answers_invalid_token(
    auth: AuthClient, bus: Bus, clock: Clock
) -> None:
    user = await auth.register("ada@example.com")
    await auth.http.post("/api/v1/auth/email-verification", headers=bearer(user))
    token = await _reset_token(auth, bus, "ada@example.com")
    verification = await published(bus, events.EmailVerificationRequestedPayload)

    unknown = await auth.http.post(RESET_CHECK, json={"token": "rt_" + "x" * 43})
    wrong_purpose = await auth.http.post(
        RESET_CHECK, json={"token": verification.verificationToken}
    )
    clock.advance(timedelta(seconds=auth.settings.reset_token_ttl_seconds + 1))
    expired = await auth.http.post(RESET_CHECK, json={"token": token})

    for response in (unknown, wrong_purpose, expired):
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == 'Bearer realm="accord"'
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["type"] == INVALID_TOKEN


async def test_checking_a_reset_token_of_a_deactivated_account_answers_invalid_token(
    auth: AuthClient, bus: Bus
) -> None:
    user = await auth.register("ada@example.com")
    token = await _reset_token(auth, bus, "ada@example.com")
    await auth.http.post(f"/api/v1/auth/users/{user['userId']}/deactivate", headers=bearer(user))

    response = await auth.http.post(RESET_CHECK, json={"token": token})

    assert response.status_code == 401
    assert response.json()["type"] == INVALID_TOKEN


async def test_a_check_that_fails_the_contract_is_422_and_a_malformed_body_400(
    auth: AuthClient,
) -> None:
    short = await auth.http.post(RESET_CHECK, json={"token": "rt_short"})
    extra = await auth.http.post(RESET_CHECK, json={"token": "rt_" + "x" * 43, "more": 1})
    malformed = await auth.http.post(
        RESET_CHECK, content=b"{", headers={"content-type": "application/json"}
    )

    assert short.status_code == 422
    assert extra.status_code == 422
    assert malformed.status_code == 400
