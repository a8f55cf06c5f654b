"""The user service refuses a request body over `USER_MAX_REQUEST_BODY_BYTES` (64 KiB) with a 413
problem before reading it: a 2 MB profile change changes nothing, whether its length is
declared or it arrives in chunks; a change within the limit still works."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from services.kit.memory import InMemoryBroker, InMemoryEventConsumer
from services.kit.topology import QueueSpec
from services.user.app import Adapters, create_app
from services.user.settings import load_settings
from services.user.storage import SqlUserStore
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
from tests.user.conftest import FAST, RolesTable, Tokens, UserService, user_settings

JSON = {"Content-Type": "application/json"}


@pytest.mark.parametrize("chunked", [False, True], ids=["declared", "chunked"])
async def test_a_2_mb_profile_change_is_refused_with_413_and_changes_nothing(
    service: UserService, chunked: bool
) -> None:
    user_id = await service.register()
    body = padded_json({"firstName": "Mallory"}, TWO_MB)
    sent = CountedBody(body)
    headers = service.owner(user_id) | JSON
    if not chunked:
        headers["Content-Length"] = str(len(body))

    response = await service.http.patch(f"/api/v1/users/{user_id}", content=sent, headers=headers)
    profile = await service.http.get(f"/api/v1/users/{user_id}", headers=service.owner(user_id))

    assert_payload_too_large(response)
    assert sent.pulled <= LIMIT + sent.chunk
    assert profile.json()["firstName"] is None


async def test_a_profile_change_padded_to_the_limit_still_works(service: UserService) -> None:
    user_id = await service.register()
    body = padded_json({"firstName": "Ada"}, LIMIT)

    response = await service.http.patch(
        f"/api/v1/users/{user_id}", content=body, headers=service.owner(user_id) | JSON
    )

    assert response.status_code == 200, response.text
    assert response.json()["firstName"] == "Ada"


def test_the_limit_is_read_from_user_max_request_body_bytes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("ACCORD_ENV", raising=False)
    assert load_settings().max_request_body_bytes == 65536

    monkeypatch.setenv("USER_MAX_REQUEST_BODY_BYTES", "1024")
    assert load_settings().max_request_body_bytes == 1024


@pytest.mark.parametrize("chunked", [False, True], ids=["declared", "chunked"])
async def test_a_real_user_server_answers_413_while_the_client_is_still_sending(
    tmp_path: Path, tokens: Tokens, unique_prefix: str, chunked: bool
) -> None:
    database_url = f"sqlite:///{tmp_path / 'user.db'}"
    broker = InMemoryBroker()
    queue = unique_prefix + "accord-user-service"
    broker.create_queue(QueueSpec(queue))
    adapters = Adapters(
        store=SqlUserStore(database_url),
        verifier=tokens.verifier(),
        roles=RolesTable(),
        consumer=InMemoryEventConsumer(broker, queue, FAST),
    )
    app = create_app(user_settings(database_url, queue=queue), adapters=adapters)
    body = padded_json({"label": "Home"}, TWO_MB)

    async with app.router.lifespan_context(app), serving(app) as port:
        answer = await post_raw(
            port,
            f"/api/v1/users/{uuid.uuid4()}/addresses",
            body,
            chunked=chunked,
            send_before_reading=LIMIT + 4096 if chunked else 0,
        )

    assert answer.status == 413
    assert answer.problem()["type"] == PAYLOAD_TOO_LARGE
    assert answer.sent < TWO_MB
    assert answer.still_sending
