"""`accord migrate SERVICE` as a deploy step on PostgreSQL, and a service started with
`ACCORD_ENV=production` refusing a database that the step has not brought to its schema."""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import subprocess
import sys
from pathlib import Path

import asyncpg
import pytest
from typer.testing import CliRunner

from harness.cli import app as cli
from harness.maintenance.migrate import history
from harness.stack.faults import ServiceProcess
from services.auth.settings import Settings
from services.auth.storage import SqlAuthStore
from services.kit.migrations import upgrade
from services.kit.store import SchemaNotMigratedError
from services.kit.tokens import SigningKey, now_utc
from tests.conftest import REPOSITORY
from tests.e2e.support import free_ports

runner = CliRunner()
# The command as a deploy job runs it: the `accord` script beside this Python.
ACCORD = str(Path(sys.executable).with_name("accord"))
log = logging.getLogger("test.migrate")


def production_environment(database_url: str) -> dict[str, str]:
    """What the auth service needs to start with ACCORD_ENV=production (SNS is never reached:
    the service stops, or is stopped, before its relay publishes anything)."""
    return {
        "ACCORD_ENV": "production",
        "AUTH_DATABASE_URL": database_url,
        "AUTH_SIGNING_KEY": SigningKey.generate().to_pem().decode(),
        "AUTH_SERVICE_API_KEY": secrets.token_urlsafe(32),
        "AUTH_ISSUER": "https://auth.example",
        "AWS_ENDPOINT_URL": "http://127.0.0.1:1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
    }


def production_settings(database_url: str, **overrides: object) -> Settings:
    return Settings(
        environment="production",
        database_url=database_url,
        service_api_key=secrets.token_urlsafe(32),
        signing_key=SigningKey.generate().to_pem().decode(),
        **overrides,  # type: ignore[arg-type]
    )


async def revisions(url: str) -> list[str]:
    connection = await asyncpg.connect(url)
    try:
        exists = await connection.fetchval("SELECT to_regclass('alembic_version') IS NOT NULL")
        if not exists:
            return []
        return [row[0] for row in await connection.fetch("SELECT version_num FROM alembic_version")]
    finally:
        await connection.close()


# --- the command ------------------------------------------------------------------------------


@pytest.mark.postgres
def test_migrate_brings_a_new_database_to_the_newest_revision_and_a_second_run_does_nothing(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("USER_DATABASE_URL", postgres_url)

    first = runner.invoke(cli, ["migrate", "user"])
    second = runner.invoke(cli, ["migrate", "user"])

    assert first.exit_code == 0, first.output
    assert "user: migrated the database" in first.output
    assert "from an empty schema to" in first.output
    assert second.exit_code == 0, second.output
    assert "the newest" in second.output
    assert asyncio.run(revisions(postgres_url)) != []


@pytest.mark.postgres
def test_migrate_check_fails_on_a_database_behind_the_newest_revision_and_changes_nothing(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AUTH_DATABASE_URL", postgres_url)
    asyncio.run(upgrade(postgres_url, history("auth"), "r0002"))

    checked = runner.invoke(cli, ["migrate", "auth", "--check"])

    assert checked.exit_code == 1
    assert "at revision r0002, behind this version's r0003" in checked.output
    assert "`accord migrate auth` migrates it" in checked.output
    assert asyncio.run(revisions(postgres_url)) == ["r0002"]
    migrated = runner.invoke(cli, ["migrate", "auth"])
    assert migrated.exit_code == 0, migrated.output
    assert "from r0002 to r0003" in migrated.output


def test_migrate_names_the_setting_when_the_database_cannot_be_reached(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("NOTIFICATION_DATABASE_URL", "postgresql://postgres@127.0.0.1:1/accord")

    result = runner.invoke(cli, ["migrate", "notification"])

    assert result.exit_code == 1
    assert result.output.strip() == (
        "error: NOTIFICATION_DATABASE_URL: cannot reach the PostgreSQL server at 127.0.0.1:1 "
        "(connection refused)"
    )


def test_migrate_names_the_setting_when_it_is_not_a_database_url(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AUTH_DATABASE_URL", "mysql://somewhere/accord")

    result = runner.invoke(cli, ["migrate", "auth"])

    assert result.exit_code == 1
    assert result.output.startswith("error: the auth settings are wrong: AUTH_DATABASE_URL: ")
    assert len(result.output.strip().splitlines()) == 1


@pytest.mark.postgres
def test_two_migrations_run_at_once_take_turns_under_the_advisory_lock(postgres_url: str) -> None:
    # Two deploy jobs at once, each a process of its own: without the lock one of them would
    # fail creating tables the other has just created.
    command = [ACCORD, "migrate", "auth"]
    environment = {"AUTH_DATABASE_URL": postgres_url, "PATH": "/usr/bin:/bin"}
    runs = [
        subprocess.Popen(
            command, cwd=REPOSITORY, env=environment, stdout=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    outputs = [run.communicate(timeout=120)[0] for run in runs]

    assert [run.returncode for run in runs] == [0, 0], outputs
    assert asyncio.run(revisions(postgres_url)) == ["r0003"]


# --- a service started outside local mode ---------------------------------------------------


@pytest.mark.postgres
async def test_a_production_service_refuses_an_unmigrated_database_naming_the_command(
    postgres_url: str,
) -> None:
    (port,) = free_ports(1)
    served = await asyncio.create_subprocess_exec(
        ACCORD,
        "serve",
        "auth",
        "--port",
        str(port),
        cwd=REPOSITORY,
        env={**os.environ, **production_environment(postgres_url)},
        stderr=asyncio.subprocess.PIPE,
    )
    _, stderr = await asyncio.wait_for(served.communicate(), timeout=60)

    assert served.returncode == 2
    assert stderr.decode().strip() == (
        f'error: AUTH_DATABASE_URL: the database "{postgres_url.rsplit("/", 1)[1]}" on the '
        "PostgreSQL server at 127.0.0.1:5432 is not migrated (no revision; this version needs "
        "r0003); run `accord migrate auth` before starting the service (it does not migrate on "
        "start outside local mode)"
    )
    assert await revisions(postgres_url) == []  # it did not migrate either


@pytest.mark.postgres
async def test_a_production_service_starts_once_accord_migrate_has_run(
    postgres_url: str,
) -> None:
    (port,) = free_ports(1)
    environment = production_environment(postgres_url)
    migrated = await asyncio.create_subprocess_exec(
        ACCORD,
        "migrate",
        "auth",
        cwd=REPOSITORY,
        env={"AUTH_DATABASE_URL": postgres_url, "PATH": "/usr/bin:/bin"},
    )
    assert await migrated.wait() == 0

    async with ServiceProcess("auth", environment, port) as service:
        assert service.pid is not None  # ready: /health/ready answered 200


@pytest.mark.postgres
async def test_a_production_service_refuses_a_database_behind_its_schema(
    postgres_url: str,
) -> None:
    await upgrade(postgres_url, history("auth"), "r0002")
    store = SqlAuthStore(postgres_url, clock=now_utc)
    try:
        with pytest.raises(SchemaNotMigratedError, match="at revision r0002, behind") as refused:
            await store.prepare(production_settings(postgres_url), log)
    finally:
        await store.dispose()

    assert "run `accord migrate auth`" in str(refused.value)
    assert await revisions(postgres_url) == ["r0002"]


@pytest.mark.postgres
async def test_a_production_service_starts_on_a_schema_a_newer_version_migrated(
    postgres_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    # A rolling deploy: the new version has migrated, the old version's replicas still start.
    await upgrade(postgres_url, history("auth"))
    connection = await asyncpg.connect(postgres_url)
    try:
        await connection.execute("UPDATE alembic_version SET version_num = 'r9999'")
    finally:
        await connection.close()
    store = SqlAuthStore(postgres_url, clock=now_utc)
    try:
        await store.prepare(production_settings(postgres_url), log)
    finally:
        await store.dispose()

    assert "at revision r9999, newer than this version's r0003; starting" in caplog.text


@pytest.mark.postgres
async def test_migrating_on_start_outside_local_mode_is_a_choice_said_out_loud(
    postgres_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    store = SqlAuthStore(postgres_url, clock=now_utc)
    try:
        await store.prepare(production_settings(postgres_url, migrate_on_start=True), log)
    finally:
        await store.dispose()

    assert await revisions(postgres_url) == ["r0003"]
    assert "AUTH_MIGRATE_ON_START=true: migrating the auth database at start-up" in caplog.text


def test_local_mode_migrates_on_start_unless_told_not_to(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'auth.db'}"

    assert Settings(environment="local", database_url=url).migrates_on_start
    assert not Settings(
        environment="local", database_url=url, migrate_on_start=False
    ).migrates_on_start
    assert not production_settings(url).migrates_on_start
