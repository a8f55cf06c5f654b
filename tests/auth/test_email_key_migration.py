"""Revision r0002 recomputes `accounts.email_key` from case folding to the exact local-part
rule, on SQLite and PostgreSQL; its downgrade refuses to merge accounts."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from alembic import command
from sqlalchemy.engine import Connection

from services.auth.domain import email_key
from services.auth.storage import MIGRATIONS, SqlAuthStore
from services.kit.database import UtcDateTime, create_engine
from services.kit.migrations import CONNECTION_ATTRIBUTE, alembic_config, upgrade

# The accounts table as r0001 made it, with only what these tests write.
accounts = sa.table(
    "accounts",
    sa.column("id", sa.Uuid()),
    sa.column("email", sa.String()),
    sa.column("email_key", sa.String()),
    sa.column("password_hash", sa.String()),
    sa.column("email_verified", sa.Boolean()),
    sa.column("roles", sa.JSON()),
    sa.column("status", sa.String()),
    sa.column("created_at", UtcDateTime()),
)

# As the API stored them (NFC, domain in lower case), each with its case-folded r0001 key.
EMAILS = {
    "Straße@example.com": "strasse@example.com",
    "Åsa@example.com": "åsa@example.com",
    "ADA@example.com": "ada@example.com",
    "grace@example.com": "grace@example.com",
}


async def _insert(database_url: str, emails: dict[str, str]) -> None:
    engine = create_engine(database_url)
    try:
        async with engine.begin() as connection:
            await connection.execute(
                sa.insert(accounts),
                [
                    {
                        "id": uuid.uuid4(),
                        "email": email,
                        "email_key": key,
                        "password_hash": "$argon2id$not-a-real-hash",
                        "email_verified": False,
                        "roles": ["user"],
                        "status": "active",
                        "created_at": datetime.now(UTC),
                    }
                    for email, key in emails.items()
                ],
            )
    finally:
        await engine.dispose()


async def _keys(database_url: str) -> dict[str, str]:
    engine = create_engine(database_url)
    try:
        async with engine.connect() as connection:
            rows = await connection.execute(sa.select(accounts.c.email, accounts.c.email_key))
            return {row.email: row.email_key for row in rows}
    finally:
        await engine.dispose()


async def _downgrade(database_url: str, revision: str) -> None:
    config = alembic_config(MIGRATIONS)

    def run(connection: Connection) -> None:
        config.attributes[CONNECTION_ATTRIBUTE] = connection
        command.downgrade(config, revision)

    engine = create_engine(database_url)
    try:
        async with engine.begin() as connection:
            await connection.run_sync(run)
    finally:
        await engine.dispose()


async def test_the_migration_recomputes_every_email_key_with_the_exact_local_part_rule(
    database_url: str,
) -> None:
    await upgrade(database_url, MIGRATIONS, "r0001")
    await _insert(database_url, EMAILS)

    await upgrade(database_url, MIGRATIONS, "r0002")

    assert await _keys(database_url) == {email: email_key(email) for email in EMAILS}
    assert (await _keys(database_url))["Straße@example.com"] == "straße@example.com"


async def test_after_the_migration_strasse_can_have_an_account_beside_straße(
    database_url: str,
) -> None:
    await upgrade(database_url, MIGRATIONS, "r0001")
    await _insert(database_url, EMAILS)
    await upgrade(database_url, MIGRATIONS, "r0002")

    await _insert(database_url, {"strasse@example.com": email_key("strasse@example.com")})

    store = SqlAuthStore(database_url, clock=lambda: datetime.now(UTC))
    try:
        async with store.unit_of_work() as uow:
            sharp = await uow.accounts.by_email("STRAßE@EXAMPLE.COM")
            double = await uow.accounts.by_email("Strasse@Example.com")
    finally:
        await store.dispose()
    assert sharp is not None
    assert sharp.email == "Straße@example.com"
    assert double is not None
    assert double.email == "strasse@example.com"


async def test_the_downgrade_restores_case_folded_keys_unless_two_accounts_would_share_one(
    database_url: str,
) -> None:
    await upgrade(database_url, MIGRATIONS, "r0002")
    await _insert(database_url, {email: email_key(email) for email in EMAILS})

    await _downgrade(database_url, "r0001")
    assert await _keys(database_url) == EMAILS

    await upgrade(database_url, MIGRATIONS, "r0002")
    await _insert(database_url, {"strasse@example.com": "strasse@example.com"})
    with pytest.raises(RuntimeError, match="would give 2 accounts a key another account has"):
        await _downgrade(database_url, "r0001")
    assert (await _keys(database_url))["Straße@example.com"] == "straße@example.com"
