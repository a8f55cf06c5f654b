"""`GET /api/v1/notifications` and the health probes, through HTTP, on SQLite and PostgreSQL:
authentication (401), the admin role (403, 503 when it cannot be confirmed), filters, cursor
pagination and validation (422)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
import pytest

from generated.notification import models as api
from services.kit.events import Event
from services.kit.memory import InMemoryBroker
from services.kit.tokens import JwksKeySource, KeySourceUnavailableError, TokenVerifier
from services.notification.mail import RecordingEmailSender, SmtpConfig, SmtpEmailSender
from services.notification.roles import StaticRoleDirectory
from tests.notification.support import (
    AUDIENCE,
    ISSUER,
    MailServer,
    Service,
    Tokens,
    bearer,
    deactivated,
    eventually,
    memory_topology,
    reset_requested,
    running_service,
    settings_for,
    verification_requested,
)

PATH = "/api/v1/notifications"
PROBLEM = "application/problem+json"


@pytest.fixture
def roles(tokens: Tokens) -> StaticRoleDirectory:
    return StaticRoleDirectory({tokens.admin_id: frozenset({"user", "admin"})})


@pytest.fixture
async def service(
    database_url: str,
    tokens: Tokens,
    roles: StaticRoleDirectory,
    broker: InMemoryBroker,
    unique_prefix: str,
) -> AsyncIterator[Service]:
    """The service on SQLite and on PostgreSQL."""
    async with running_service(
        settings_for(database_url),
        sender=RecordingEmailSender(),
        tokens=tokens,
        roles=roles,
        broker=broker,
        prefix=unique_prefix,
    ) as running:
        yield running


@pytest.fixture
async def on_sqlite(
    sqlite_url: str,
    tokens: Tokens,
    roles: StaticRoleDirectory,
    broker: InMemoryBroker,
    unique_prefix: str,
) -> AsyncIterator[Service]:
    """The service on SQLite only, for matrices of requests that never reach the database."""
    async with running_service(
        settings_for(sqlite_url),
        sender=RecordingEmailSender(),
        tokens=tokens,
        roles=roles,
        broker=broker,
        prefix=unique_prefix,
    ) as running:
        yield running


async def publish_all(service: Service, *events: Any) -> None:
    for event in events:
        await service.publish(event)
    await eventually(lambda: service.queue_depth() == 0)


async def get(service: Service, token: str | None, **params: Any) -> httpx.Response:
    headers = bearer(token) if token is not None else {}
    return await service.client.get(PATH, params=params, headers=headers)


def assert_problem(response: httpx.Response, status: int, slug: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body: dict[str, Any] = response.json()
    assert body["type"] == f"https://accord.example/problems/{slug}"
    assert body["status"] == status
    return body


# --- 401 / 403 / 503 ----------------------------------------------------------------------


async def test_a_request_without_a_token_is_unauthenticated(service: Service) -> None:
    response = await get(service, None)
    assert_problem(response, 401, "unauthenticated")
    assert response.headers["www-authenticate"] == 'Bearer realm="accord"'


@pytest.mark.parametrize("header", ["Basic YWRhOnB3", "Bearer", "Bearer    ", "token"])
async def test_an_authorization_header_without_a_bearer_token_is_unauthenticated(
    on_sqlite: Service, header: str
) -> None:
    response = await on_sqlite.client.get(PATH, headers={"Authorization": header})
    assert_problem(response, 401, "unauthenticated")


@pytest.mark.parametrize(
    "make", ["expired", "from_other_issuer", "signed_by_another_key", "garbage"]
)
async def test_a_refused_token_is_unauthenticated_with_the_reason(
    on_sqlite: Service, tokens: Tokens, make: str
) -> None:
    token = "not.a.jwt" if make == "garbage" else getattr(tokens, make)()
    response = await get(on_sqlite, token)
    body = assert_problem(response, 401, "unauthenticated")
    assert 'error="invalid_token"' in response.headers["www-authenticate"]
    assert token not in body["detail"]


async def test_a_user_without_the_admin_role_is_forbidden(service: Service, tokens: Tokens) -> None:
    assert_problem(await get(service, tokens.user()), 403, "forbidden")


async def test_an_admin_claim_the_auth_service_no_longer_confirms_is_forbidden(
    service: Service, tokens: Tokens, roles: StaticRoleDirectory
) -> None:
    roles.users[tokens.admin_id] = frozenset({"user"})  # demoted after the token was issued
    assert_problem(await get(service, tokens.admin()), 403, "forbidden")


async def test_when_the_admin_role_cannot_be_confirmed_the_answer_is_503_with_retry_after(
    service: Service, tokens: Tokens, roles: StaticRoleDirectory
) -> None:
    roles.available = False
    response = await get(service, tokens.admin())
    assert_problem(response, 503, "dependency-unavailable")
    assert int(response.headers["retry-after"]) > 0
    # A token without the role is refused without asking anyone.
    assert_problem(await get(service, tokens.user()), 403, "forbidden")


async def test_when_the_signing_keys_cannot_be_fetched_the_answer_is_503(
    sqlite_url: str, tokens: Tokens
) -> None:
    async def unreachable() -> dict[str, Any]:
        raise KeySourceUnavailableError("the auth service is down")

    class Unreachable(Tokens):
        def verifier(self) -> TokenVerifier:
            return TokenVerifier(JwksKeySource(unreachable), issuer=ISSUER, audience=AUDIENCE)

    down = Unreachable()
    async with running_service(
        settings_for(sqlite_url), sender=RecordingEmailSender(), tokens=down
    ) as service:
        response = await get(service, down.admin())
    assert_problem(response, 503, "dependency-unavailable")
    assert "retry-after" in response.headers


async def test_without_a_role_directory_the_tokens_admin_claim_is_trusted(
    sqlite_url: str, tokens: Tokens
) -> None:
    async with running_service(
        settings_for(sqlite_url), sender=RecordingEmailSender(), tokens=tokens, roles=None
    ) as service:
        assert (await get(service, tokens.admin())).status_code == 200
        assert_problem(await get(service, tokens.user()), 403, "forbidden")


# --- 200 ------------------------------------------------------------------------------------


async def test_the_log_lists_sent_and_skipped_entries_newest_first(
    service: Service, tokens: Tokens
) -> None:
    user = uuid.uuid4()
    first = verification_requested(user, sequence=2, email="ada@example.com")
    expired = reset_requested(user, sequence=3, expires_in=timedelta(seconds=-5))
    await publish_all(service, first)
    await publish_all(service, expired)

    response = await get(service, tokens.admin())

    assert response.status_code == 200
    page = api.NotificationPage.model_validate(response.json())
    assert page.nextCursor is None
    assert [item.eventId for item in page.items] == [expired.eventId, first.eventId]
    newest, oldest = page.items
    assert (newest.status, newest.reason, newest.sentAt) == ("skipped", "expired", None)
    assert (newest.type, newest.channel, newest.userId) == ("password_reset", "email", user)
    assert (oldest.status, oldest.reason, oldest.recipient) == ("sent", None, "ada@example.com")
    assert oldest.sentAt is not None
    assert oldest.subject == "Verify your Accord email address"


async def test_the_log_filters_by_user_and_by_type(service: Service, tokens: Tokens) -> None:
    ada, grace = uuid.uuid4(), uuid.uuid4()
    events: list[Event] = [
        verification_requested(ada, sequence=2),
        reset_requested(ada, sequence=3),
        verification_requested(grace, sequence=2),
        reset_requested(grace, sequence=3),
    ]
    await publish_all(service, *events)
    admin = tokens.admin()

    def ids(response: httpx.Response) -> set[uuid.UUID]:
        assert response.status_code == 200, response.text
        return {uuid.UUID(item["eventId"]) for item in response.json()["items"]}

    assert ids(await get(service, admin, userId=str(ada))) == {e.eventId for e in events[:2]}
    assert ids(await get(service, admin, type="password_reset")) == {
        events[1].eventId,
        events[3].eventId,
    }
    assert ids(await get(service, admin, userId=str(grace), type="email_verification")) == {
        events[2].eventId
    }
    assert ids(await get(service, admin, userId=str(uuid.uuid4()))) == set()


async def test_a_deactivated_users_entries_are_listed_without_the_address(
    service: Service, tokens: Tokens
) -> None:
    user = uuid.uuid4()
    await publish_all(service, verification_requested(user, sequence=2))
    await publish_all(service, deactivated(user, sequence=3))
    [item] = (await get(service, tokens.admin(), userId=str(user))).json()["items"]
    assert item["recipient"] is None
    assert item["status"] == "sent"


async def test_paging_visits_every_entry_once_even_while_new_ones_are_logged(
    service: Service, tokens: Tokens
) -> None:
    await publish_all(service, *[verification_requested() for _ in range(7)])
    admin = tokens.admin()
    response = await get(service, admin, limit=3)
    before = [item["id"] for item in response.json()["items"]]
    seen = list(before)
    cursor = response.json()["nextCursor"]
    pages = 1
    while cursor is not None:
        # Entries logged meanwhile are newer than the cursor: they never shift the pages.
        await publish_all(service, verification_requested())
        response = await get(service, admin, limit=3, cursor=cursor)
        assert response.status_code == 200, response.text
        seen += [item["id"] for item in response.json()["items"]]
        cursor = response.json()["nextCursor"]
        pages += 1

    assert len(seen) == len(set(seen)) == 7
    assert pages == 3
    everything = (await get(service, admin, limit=100)).json()["items"]
    added = pages - 1
    assert len(everything) == 7 + added
    assert [item["id"] for item in everything][added:] == seen


async def test_entries_still_being_sent_are_not_listed(
    sqlite_url: str, tokens: Tokens, mail_server: MailServer
) -> None:
    mail_server.stop()  # every send fails: the entry stays `sending`
    sender = SmtpEmailSender(SmtpConfig("127.0.0.1", mail_server.port, "none", "a@b.test"))
    broker = InMemoryBroker()
    broker.apply(memory_topology("p-", max_receives=2))
    async with running_service(
        settings_for(sqlite_url), sender=sender, tokens=tokens, broker=broker, prefix="p-"
    ) as service:
        await service.publish(verification_requested())
        await eventually(lambda: len(broker.dead_letters(service.queue)) == 1)
        response = await get(service, tokens.admin())
    assert response.json() == {"items": [], "nextCursor": None}


# --- 422 ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "pointer"),
    [
        ({"userId": "not-a-uuid"}, "/query/userId"),
        ({"type": "sms"}, "/query/type"),
        ({"limit": "0"}, "/query/limit"),
        ({"limit": "101"}, "/query/limit"),
        ({"limit": "ten"}, "/query/limit"),
        ({"cursor": ""}, "/query/cursor"),
        ({"cursor": "x" * 513}, "/query/cursor"),
        ({"cursor": "bm90IGEgY3Vyc29y"}, "/query/cursor"),
        ({"cursor": "eyJ2IjoxfQ"}, "/query/cursor"),
        ({"cursor": "!!!"}, "/query/cursor"),
    ],
)
async def test_a_request_that_fails_the_contract_is_422_pointing_at_the_value(
    on_sqlite: Service, tokens: Tokens, params: dict[str, str], pointer: str
) -> None:
    response = await get(on_sqlite, tokens.admin(), **params)
    body = assert_problem(response, 422, "validation-error")
    assert [error["pointer"] for error in body["errors"]] == [pointer]


@pytest.mark.parametrize(
    "cursor",
    ["AAZhF08wvEB6i5wNHi9KO4xNXm96i5w+", "AAZhF08wvEB6i5wNHi9KO4xNXm96i5wN_", "AAZhF08wvEB6i5wN"],
    ids=["not-base64url", "33-characters", "16-characters"],
)
async def test_a_cursor_not_of_the_contracts_form_is_422(
    on_sqlite: Service, tokens: Tokens, cursor: str
) -> None:
    response = await get(on_sqlite, tokens.admin(), cursor=cursor)
    body = assert_problem(response, 422, "validation-error")
    assert [error["pointer"] for error in body["errors"]] == ["/query/cursor"]


async def test_a_cursor_continues_after_its_position_with_the_filters_it_comes_with(
    service: Service, tokens: Tokens
) -> None:
    user = uuid.uuid4()
    await publish_all(
        service,
        *[verification_requested(user, sequence=n) for n in (2, 3, 4)],
        *[verification_requested(sequence=2) for _ in range(2)],
    )
    admin = tokens.admin()
    everyone = (await get(service, admin)).json()["items"]
    first = (await get(service, admin, userId=str(user), limit=1)).json()
    cursor = first["nextCursor"]
    assert cursor is not None

    same_filters = await get(service, admin, userId=str(user), cursor=cursor)
    no_filter = await get(service, admin, cursor=cursor)

    assert [item["id"] for item in same_filters.json()["items"]] == [
        item["id"] for item in everyone if item["userId"] == str(user)
    ][1:]
    position = [item["id"] for item in everyone].index(first["items"][0]["id"])
    assert no_filter.status_code == 200
    assert no_filter.json()["items"] == everyone[position + 1 :]


async def test_an_unauthenticated_request_is_401_before_its_parameters_are_judged(
    on_sqlite: Service,
) -> None:
    assert_problem(await get(on_sqlite, None, limit="0"), 401, "unauthenticated")


# --- health ---------------------------------------------------------------------------------


async def test_liveness_checks_nothing(on_sqlite: Service) -> None:
    response = await on_sqlite.client.get("/health/live")
    assert (response.status_code, response.json()) == (200, {"status": "ok"})


async def test_readiness_reports_the_database_and_the_smtp_server(
    sqlite_url: str, tokens: Tokens, mail_server: MailServer
) -> None:
    sender = SmtpEmailSender(SmtpConfig("127.0.0.1", mail_server.port, "none", "a@b.test"))
    async with running_service(settings_for(sqlite_url), sender=sender, tokens=tokens) as service:
        ready = await service.client.get("/health/ready")
        mail_server.stop()
        down = await service.client.get("/health/ready")
        mail_server.start()
        back = await service.client.get("/health/ready")

    assert (ready.status_code, ready.json()) == (
        200,
        {"status": "ok", "checks": {"database": "ok", "smtp": "ok"}},
    )
    assert (down.status_code, down.json()) == (
        503,
        {"status": "unavailable", "checks": {"database": "ok", "smtp": "unavailable"}},
    )
    assert back.status_code == 200


async def test_unknown_paths_and_methods_are_problems(on_sqlite: Service) -> None:
    assert_problem(await on_sqlite.client.get("/api/v1/nope"), 404, "not-found")
    response = await on_sqlite.client.post(PATH)
    assert_problem(response, 405, "method-not-allowed")
