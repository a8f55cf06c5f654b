"""Secrets at rest and retention in the auth database: a published outbox row keeps only its
envelope, and published events, spent tokens and old refresh tokens are pruned after their
retention (by the service itself, and by `accord prune`), on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import insert, select, text
from typer.testing import CliRunner

from generated.events import models as events
from harness.cli import app as cli
from services.auth.retention import retention_rules
from services.auth.settings import Settings
from services.auth.storage import (
    SqlAuthStore,
    accounts,
    outbox,
    refresh_tokens,
    single_use_tokens,
)
from services.kit.database import create_engine
from services.kit.events import Event, Message, encode
from services.kit.outbox import ENVELOPE_FIELDS
from services.kit.retention import prune
from tests import factories
from tests.auth.conftest import AppFactory, Bus, Clock, bearer

VERIFY = "/api/v1/auth/email-verification"
RESET = "/api/v1/auth/password-reset"
DAY = timedelta(days=1)

runner = CliRunner()


class FailingPublisher:
    """A bus that is down: every publish fails."""

    async def publish(self, event: Event) -> None:
        await self.publish_message(encode(event))

    async def publish_message(self, message: Message) -> None:
        raise ConnectionError("SNS is unreachable")


async def outbox_rows(database_url: str) -> list[dict[str, Any]]:
    """Every outbox row, read with a connection of its own, as the database has it."""
    engine = create_engine(database_url)
    try:
        async with engine.connect() as connection:
            result = await connection.execute(text("SELECT * FROM outbox ORDER BY id"))
            return [dict(row._mapping) for row in result]
    finally:
        await engine.dispose()


async def eventually(probe: Callable[[], Awaitable[bool]], seconds: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while not await probe():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached")
        await asyncio.sleep(0.02)


async def all_published(database_url: str, count: int) -> bool:
    rows = await outbox_rows(database_url)
    return len(rows) == count and all(row["published_at"] is not None for row in rows)


# --- secrets at rest ------------------------------------------------------------------------


async def test_published_outbox_rows_keep_no_token_or_email_but_an_unpublished_row_keeps_both(
    start_auth: AppFactory, bus: Bus, database_url: str
) -> None:
    async with start_auth() as auth:
        user = await auth.register()
        assert (await auth.http.post(VERIFY, headers=bearer(user))).status_code == 202
        assert (await auth.http.post(RESET, json={"email": user["email"]})).status_code == 202
        published = await bus.wait_for(3)
        await eventually(lambda: all_published(database_url, 3))
    async with start_auth(publisher=FailingPublisher()) as auth:
        assert (await auth.http.post(RESET, json={"email": user["email"]})).status_code == 202
    rows = await outbox_rows(database_url)

    verification, reset = published[1], published[2]
    assert isinstance(verification, events.EmailVerificationRequestedPayload)
    assert isinstance(reset, events.PasswordResetRequestedPayload)
    secrets = [verification.verificationToken, reset.resetToken, user["email"]]
    sent, waiting = rows[:3], rows[3:]
    for row in sent:
        stored = " ".join(str(value) for value in row.values())
        assert [secret for secret in secrets if secret in stored] == []
        body = json.loads(row["body"])
        assert set(body) == set(ENVELOPE_FIELDS)
    assert [json.loads(row["body"])["eventId"] for row in sent] == [
        str(event.eventId) for event in published
    ]
    [unpublished] = waiting
    assert unpublished["published_at"] is None
    body = json.loads(unpublished["body"])
    assert body["email"] == user["email"]
    assert body["resetToken"]
    assert body["resetToken"] != reset.resetToken  # a new token, kept until it is published


# --- pruning --------------------------------------------------------------------------------


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[SqlAuthStore]:
    store = SqlAuthStore(database_url, clock=lambda: datetime.now(UTC))
    await store.migrate()
    yield store
    await store.dispose()


NOW = datetime(2030, 6, 1, 12, tzinfo=UTC)


async def an_account(store: SqlAuthStore) -> uuid.UUID:
    user_id = uuid.uuid4()
    async with store.sessions() as session, session.begin():
        await session.execute(
            insert(accounts).values(
                id=user_id,
                email=f"{user_id.hex}@example.com",
                email_key=f"{user_id.hex}@example.com",
                password_hash="argon2-hash",
                email_verified=False,
                roles=["user"],
                status="active",
                created_at=NOW - 100 * DAY,
                event_sequence=0,
            )
        )
    return user_id


async def remaining(store: SqlAuthStore, column: Any) -> set[Any]:
    async with store.sessions() as session:
        return set((await session.execute(select(column))).scalars())


async def prune_auth(store: SqlAuthStore, settings: Settings) -> dict[str, int]:
    return await prune(store.sessions, retention_rules(settings), now=NOW)


async def test_published_outbox_rows_older_than_the_retention_are_pruned_and_unpublished_stay(
    store: SqlAuthStore, settings: Settings
) -> None:
    rows = {
        "published long ago": (NOW - 30 * DAY, NOW - 8 * DAY),
        "published recently": (NOW - 30 * DAY, NOW - 6 * DAY),
        "never published": (NOW - 30 * DAY, None),
    }
    ids = {}
    async with store.sessions() as session, session.begin():
        for name, (created, published) in rows.items():
            event = factories.user_created()
            ids[name] = event.eventId
            await session.execute(
                insert(outbox).values(
                    event_id=event.eventId,
                    event_type=event.eventType,
                    body=encode(event).body,
                    attributes={},
                    created_at=created,
                    published_at=published,
                    attempts=0,
                    next_attempt_at=created,
                )
            )

    deleted = await prune_auth(store, settings.model_copy(update={"outbox_retention_days": 7}))

    assert deleted["outbox"] == 1
    assert await remaining(store, outbox.c.event_id) == {
        ids["published recently"],
        ids["never published"],
    }


async def test_single_use_tokens_used_or_expired_before_the_cutoff_are_pruned(
    store: SqlAuthStore, settings: Settings
) -> None:
    user_id = await an_account(store)
    tokens = {
        # name: (expires_at, used_at)
        "used long ago": (NOW + DAY, NOW - 8 * DAY),
        "expired long ago": (NOW - 8 * DAY, None),
        "used recently": (NOW + DAY, NOW - 6 * DAY),
        "expired recently": (NOW - 6 * DAY, None),
        "still usable": (NOW + DAY, None),
    }
    async with store.sessions() as session, session.begin():
        for name, (expires, used) in tokens.items():
            await session.execute(
                insert(single_use_tokens).values(
                    token_hash=name,
                    purpose="password-reset",
                    user_id=user_id,
                    issued_at=NOW - 10 * DAY,
                    expires_at=expires,
                    used_at=used,
                )
            )

    deleted = await prune_auth(store, settings.model_copy(update={"token_retention_days": 7}))

    assert deleted["single_use_tokens"] == 2
    assert await remaining(store, single_use_tokens.c.token_hash) == {
        "used recently",
        "expired recently",
        "still usable",
    }


async def test_refresh_tokens_expired_or_revoked_before_the_cutoff_are_pruned(
    store: SqlAuthStore, settings: Settings
) -> None:
    user_id = await an_account(store)
    tokens = {
        # name: (expires_at, spent_at, revoked_at)
        "expired long ago": (NOW - 8 * DAY, None, None),
        "revoked long ago": (NOW + DAY, None, NOW - 8 * DAY),
        "expired recently": (NOW - 6 * DAY, None, None),
        "revoked recently": (NOW + DAY, None, NOW - 6 * DAY),
        # Spent long ago, but its family lives on: presenting it again must still be noticed.
        "spent long ago, family alive": (NOW + DAY, NOW - 20 * DAY, None),
        "live": (NOW + DAY, None, None),
    }
    async with store.sessions() as session, session.begin():
        for name, (expires, spent, revoked) in tokens.items():
            await session.execute(
                insert(refresh_tokens).values(
                    id=uuid.uuid4(),
                    token_hash=name,
                    family_id=uuid.uuid4(),
                    user_id=user_id,
                    issued_at=NOW - 30 * DAY,
                    expires_at=expires,
                    spent_at=spent,
                    revoked_at=revoked,
                )
            )

    deleted = await prune_auth(store, settings.model_copy(update={"token_retention_days": 7}))

    assert deleted["refresh_tokens"] == 2
    assert await remaining(store, refresh_tokens.c.token_hash) == {
        "expired recently",
        "revoked recently",
        "spent long ago, family alive",
        "live",
    }


async def test_the_running_service_prunes_published_events_once_their_retention_has_passed(
    start_auth: AppFactory, bus: Bus, clock: Clock, database_url: str
) -> None:
    async with start_auth(prune_interval_seconds=0.05, outbox_retention_days=7) as auth:
        await auth.register()
        await bus.wait_for(1)
        await eventually(lambda: all_published(database_url, 1))
        clock.advance(timedelta(days=8))

        async def outbox_empty() -> bool:
            return await outbox_rows(database_url) == []

        await eventually(outbox_empty)


# --- accord prune ---------------------------------------------------------------------------


async def test_accord_prune_deletes_what_is_past_its_retention_and_prints_counts_per_table(
    store: SqlAuthStore, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    user_id = await an_account(store)
    now = datetime.now(UTC)
    async with store.sessions() as session, session.begin():
        for name, used in (
            ("used 10 days ago", now - 10 * DAY),
            ("used 2 days ago", now - 2 * DAY),
        ):
            await session.execute(
                insert(single_use_tokens).values(
                    token_hash=name,
                    purpose="email-verification",
                    user_id=user_id,
                    issued_at=now - 11 * DAY,
                    expires_at=now + DAY,
                    used_at=used,
                )
            )
    monkeypatch.setenv("AUTH_DATABASE_URL", database_url)
    monkeypatch.setenv("AUTH_TOKEN_RETENTION_DAYS", "30")

    by_settings = await invoke(["prune", "--service", "auth"])
    by_option = await invoke(["prune", "--service", "auth", "--older-than-days", "5"])

    assert by_settings.exit_code == 0, by_settings.output
    assert "auth.single_use_tokens: 0 deleted" in by_settings.output
    assert "auth.outbox: 0 deleted" in by_settings.output
    assert "auth.refresh_tokens: 0 deleted" in by_settings.output
    assert by_option.exit_code == 0, by_option.output
    assert "auth.single_use_tokens: 1 deleted" in by_option.output
    assert await remaining(store, single_use_tokens.c.token_hash) == {"used 2 days ago"}


def test_accord_prune_refuses_to_keep_processed_events_less_than_15_days(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("USER_DATABASE_URL", raising=False)

    result = runner.invoke(cli, ["prune", "--service", "user", "--older-than-days", "7"])

    assert result.exit_code == 1
    assert "--older-than-days 7 is too short for the user service" in result.output
    assert "at least 15 days" in result.output


def test_accord_prune_of_a_database_that_does_not_exist_fails_clearly(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = tmp_path / "nowhere" / "auth.db"
    monkeypatch.setenv("AUTH_DATABASE_URL", f"sqlite:///{missing}")

    result = runner.invoke(cli, ["prune", "--service", "auth"])

    assert result.exit_code == 1
    assert f"no auth database at {missing}" in result.output
    assert not missing.exists()


def test_accord_prune_with_a_bad_setting_names_the_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AUTH_TOKEN_RETENTION_DAYS", "0")

    result = runner.invoke(cli, ["prune", "--service", "auth"])

    assert result.exit_code == 1
    assert "AUTH_TOKEN_RETENTION_DAYS" in result.output


async def invoke(args: list[str]) -> Any:
    # The command runs its own event loop: keep it off this test's loop.
    return await asyncio.to_thread(lambda: runner.invoke(cli, args))
