"""The auth service refuses a request body over `AUTH_MAX_REQUEST_BODY_BYTES` (64 KiB) with a 413
problem before reading it: a 2 MB registration creates no account, whether its length is
declared or it arrives in chunks; a registration within the limit still works."""

from __future__ import annotations

import uuid

import pytest

from services.auth.app import create_app
from services.auth.settings import Settings, load_settings
from tests.auth.conftest import PASSWORD, AppFactory
from tests.body_limits import (
    LIMIT,
    PAYLOAD_TOO_LARGE,
    TWO_MB,
    CountedBody,
    assert_payload_too_large,
    padded_json,
    post_raw,
    serving,
)

REGISTER = "/api/v1/auth/register"


def registration(size: int) -> tuple[str, bytes]:
    email = f"big-{uuid.uuid4().hex[:12]}@example.com"
    return email, padded_json({"email": email, "password": PASSWORD}, size)


@pytest.mark.parametrize("chunked", [False, True], ids=["declared", "chunked"])
async def test_a_2_mb_registration_is_refused_with_413_and_creates_no_account(
    start_auth: AppFactory, chunked: bool
) -> None:
    email, body = registration(TWO_MB)
    sent = CountedBody(body)
    async with start_auth() as auth:
        response = await auth.http.post(
            REGISTER,
            content=sent,
            headers={"Content-Type": "application/json"}
            | ({} if chunked else {"Content-Length": str(len(body))}),
        )
        login = await auth.login(email)

    assert_payload_too_large(response)
    assert sent.pulled <= LIMIT + sent.chunk
    assert login.status_code == 401


async def test_a_registration_padded_to_just_under_the_limit_still_works(
    start_auth: AppFactory,
) -> None:
    email, body = registration(LIMIT)
    async with start_auth() as auth:
        response = await auth.http.post(
            REGISTER, content=body, headers={"Content-Type": "application/json"}
        )
        login = await auth.login(email)

    assert response.status_code == 201, response.text
    assert login.status_code == 200


async def test_the_limit_is_the_max_request_body_bytes_setting(start_auth: AppFactory) -> None:
    _, body = registration(2048)
    async with start_auth(max_request_body_bytes=1024) as auth:
        response = await auth.http.post(
            REGISTER, content=body, headers={"Content-Type": "application/json"}
        )

    assert_payload_too_large(response)
    assert "limit of 1024 bytes" in response.json()["detail"]


def test_the_limit_is_read_from_auth_max_request_body_bytes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("ACCORD_ENV", raising=False)
    assert load_settings().max_request_body_bytes == 65536

    monkeypatch.setenv("AUTH_MAX_REQUEST_BODY_BYTES", "1024")
    assert load_settings().max_request_body_bytes == 1024


@pytest.mark.parametrize("chunked", [False, True], ids=["declared", "chunked"])
async def test_a_real_auth_server_answers_413_while_the_client_is_still_sending(
    settings: Settings, chunked: bool
) -> None:
    _, body = registration(TWO_MB)
    app = create_app(settings)
    async with app.router.lifespan_context(app), serving(app) as port:
        answer = await post_raw(
            port,
            REGISTER,
            body,
            chunked=chunked,
            send_before_reading=LIMIT + 4096 if chunked else 0,
        )

    assert answer.status == 413
    assert answer.problem()["type"] == PAYLOAD_TOO_LARGE
    assert answer.sent < TWO_MB
    assert answer.still_sending
