"""`accord migrate SERVICE`: a service's Alembic history run against its database, as a deploy
step of its own, before the new version's replicas start.

The database is the one the service itself would use: its settings (`AUTH_DATABASE_URL`, ...)
read from the environment as `accord serve` reads them. On PostgreSQL the migration holds the
service's advisory lock (`services.kit.migrations.upgrade`), so two deploy jobs, or a job and a
replica that migrates on start, take turns. Outside local mode the services no longer migrate
on start: they check the schema and refuse to start, naming this command, when it is behind.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from services.kit.migrations import SchemaState, schema_state, upgrade
from services.kit.settings import ServiceSettings, SettingsError
from services.kit.startup import DatabaseSetting, explain


class MigrateError(Exception):
    """`accord migrate` cannot run; the message says why, on one line, naming the setting."""


@dataclass(frozen=True)
class Migrated:
    """What `migrate` found and left: the database, and its schema before and after."""

    service: str
    database: DatabaseSetting
    before: SchemaState
    after: SchemaState

    def report(self) -> str:
        """One line: `auth: migrated the database "a" on ... from r0002 to r0003`."""
        where = self.database.describe()
        if self.before.current != self.after.current:
            before = ", ".join(self.before.current) or "an empty schema"
            return (
                f"{self.service}: migrated {where} from {before} to {', '.join(self.after.current)}"
            )
        line = f"{self.service}: {where} is {self.after.describe()}"
        if self.behind:
            return f"{line}; `accord migrate {self.service}` migrates it"
        return line

    @property
    def behind(self) -> bool:
        """Whether the database is left behind the newest revision (only with `check`)."""
        return not (self.after.migrated or self.after.newer)


class _LoadSettings(Protocol):
    def __call__(self) -> ServiceSettings: ...


def history(service: str) -> Path:
    """The service's Alembic history (`services/<service>/migrations`)."""
    package = importlib.import_module(f"services.{service}")
    return Path(package.__file__ or "").parent / "migrations"


def database_of(service: str) -> DatabaseSetting:
    """The service's database from its settings; `MigrateError` naming a wrong variable."""
    load: _LoadSettings = importlib.import_module(f"services.{service}.settings").load_settings
    try:
        return DatabaseSetting.of(load())
    except SettingsError as error:  # "the auth service cannot start:" and a line per variable
        problems = [line.strip() for line in str(error).splitlines()[1:]]
        raise MigrateError(f"the {service} settings are wrong: {'; '.join(problems)}") from None


async def migrate(service: str, *, check: bool = False) -> Migrated:
    """Bring `service`'s database to the newest revision of its history (with `check`, only
    say where it stands). `MigrateError` in one line naming the setting when the database
    cannot be reached or the migration fails."""
    database = database_of(service)
    script_location = history(service)
    try:
        before = await schema_state(database.url, script_location)
        if check or before.migrated or before.newer:
            return Migrated(service, database, before, before)
        await upgrade(database.url, script_location)
        after = await schema_state(database.url, script_location)
    except Exception as error:
        message = str(explain(error, service=service, database=database))
        generic = f"the {service} service could not start: "  # explain's words for the rest
        if message.startswith(generic):
            message = f"migrating the {service} database failed: {message.removeprefix(generic)}"
        raise MigrateError(message) from None
    return Migrated(service, database, before, after)
