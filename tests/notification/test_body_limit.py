"""The notification service refuses a request body over `NOTIFICATION_MAX_REQUEST_BODY_BYTES`
(64 KiB) with a 413 problem before reading it or routing the request, whether its length is
declared or it arrives in chunks; requests within the limit are served as before."""

from __future__ import annotations

import pytest

from services.notification.mail import RecordingEmailSender
from services.notification.roles import StaticRoleDirectory
from services.notification.settings import load_settings
from tests.body_limits import (
    LIMIT,
    PAYLOAD_TOO_LARGE,
    TWO_MB,
    CountedBody,
    assert_payload_too_large,
    post_raw,
    serving,
)
from tests.notification.support import Tokens, bearer, running_service, settings_for

PATH = "/api/v1/notifications"


def admins(tokens: Tokens) -> StaticRoleDirectory:
    return StaticRoleDirectory({tokens.admin_id: frozenset({"user", "admin"})})


@pytest.mark.parametrize("chunked", [False, True], ids=["declared", "chunked"])
async def test_a_2_mb_body_is_refused_with_413_before_the_request_is_routed(
    sqlite_url: str, tokens: Tokens, chunked: bool
) -> None:
    sent = CountedBody(b"{" + b" " * (TWO_MB - 2) + b"}")
    headers = bearer(tokens.admin()) | {"Content-Type": "application/json"}
    declared = {} if chunked else {"Content-Length": str(TWO_MB)}
    async with running_service(
        settings_for(sqlite_url), sender=RecordingEmailSender(), tokens=tokens, roles=admins(tokens)
    ) as service:
        refused = await service.client.post(PATH, content=sent, headers=headers | declared)
        small = await service.client.post(PATH, content=b"{}", headers=headers)
        listed = await service.client.get(PATH, headers=bearer(tokens.admin()))

    assert_payload_too_large(refused)
    assert sent.pulled <= LIMIT + sent.chunk
    assert small.status_code == 405  # within the limit, the route answers as it always did
    assert listed.status_code == 200


def test_the_limit_is_read_from_notification_max_request_body_bytes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("ACCORD_ENV", raising=False)
    assert load_settings().max_request_body_bytes == 65536

    monkeypatch.setenv("NOTIFICATION_MAX_REQUEST_BODY_BYTES", "1024")
    assert load_settings().max_request_body_bytes == 1024


@pytest.mark.parametrize("chunked", [False, True], ids=["declared", "chunked"])
async def test_a_real_notification_server_answers_413_while_the_client_is_still_sending(
    sqlite_url: str, tokens: Tokens, chunked: bool
) -> None:
    async with (
        running_service(
            settings_for(sqlite_url), sender=RecordingEmailSender(), tokens=tokens
        ) as service,
        serving(service.app) as port,
    ):
        answer = await post_raw(
            port,
            PATH,
            b"x" * TWO_MB,
            chunked=chunked,
            send_before_reading=LIMIT + 4096 if chunked else 0,
        )

    assert answer.status == 413
    assert answer.problem()["type"] == PAYLOAD_TOO_LARGE
    assert answer.sent < TWO_MB
    assert answer.still_sending
