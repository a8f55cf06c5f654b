"""`accord prune`: one retention pass over the services' databases, the same pass each service
runs periodically (`services.kit.retention`), configured from each service's environment
variables as `accord serve` configures it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Protocol

from sqlalchemy.engine import make_url

from services.kit.retention import MIN_PROCESSED_EVENT_RETENTION_DAYS, PROCESSED_EVENTS_WHY

SERVICES = ("auth", "user", "notification")


class PruneError(Exception):
    """`accord prune` cannot run; the message says why, on one line."""


@dataclass(frozen=True)
class Target:
    """One service's database and how to prune it."""

    service: str
    database_url: str
    prune: Callable[[datetime, timedelta | None], Awaitable[dict[str, int]]]


def one_line(error: BaseException) -> str:
    """The first line of an error's message (SQLAlchemy's go on with the SQL and a link)."""
    text = str(error).strip() or type(error).__name__
    return " ".join(line.strip() for line in text.splitlines()[:1])


def target(service: str) -> Target:
    """`service`'s database and pruning, from its settings; `PruneError` naming the setting."""
    from services.kit.settings import SettingsError

    try:
        if service == "auth":
            return _auth()
        if service == "user":
            return _user()
        if service == "notification":
            return _notification()
    except SettingsError as error:  # "the auth service cannot start:" and a line per variable
        problems = [line.strip() for line in str(error).splitlines()[1:]]
        raise PruneError(f"the {service} settings are wrong: {'; '.join(problems)}") from None
    raise PruneError(f"unknown service {service!r}; the services are {', '.join(SERVICES)}")


def _auth() -> Target:
    from services.auth.retention import retention_rules
    from services.auth.settings import load_settings
    from services.auth.storage import SqlAuthStore
    from services.kit.retention import prune

    settings = load_settings()

    async def run(now: datetime, older_than: timedelta | None) -> dict[str, int]:
        store = SqlAuthStore(settings.database_url, clock=lambda: now)
        try:
            rules = retention_rules(settings)
            return await prune(store.sessions, rules, now=now, older_than=older_than)
        finally:
            await store.dispose()

    return Target("auth", settings.database_url, run)


def _user() -> Target:
    from services.user.settings import load_settings
    from services.user.storage import SqlUserStore

    settings = load_settings()
    return _processed_events("user", settings.database_url, settings, SqlUserStore)


def _notification() -> Target:
    from services.notification.settings import load_settings
    from services.notification.storage import SqlNotificationDatabase

    settings = load_settings()
    return _processed_events(
        "notification", settings.database_url, settings, SqlNotificationDatabase
    )


class _PrunableStore(Protocol):
    async def prune(self, keep: timedelta, now: datetime) -> dict[str, int]: ...

    async def dispose(self) -> None: ...


class _RetentionSettings(Protocol):
    @property
    def processed_event_retention_days(self) -> int: ...


def _processed_events(
    service: str,
    database_url: str,
    settings: _RetentionSettings,
    open_store: Callable[[str], _PrunableStore],
) -> Target:
    """The user and notification services: their processed-event records, kept for the
    service's retention unless `older_than` says otherwise."""

    async def run(now: datetime, older_than: timedelta | None) -> dict[str, int]:
        store = open_store(database_url)
        try:
            keep = older_than
            if keep is None:
                keep = timedelta(days=settings.processed_event_retention_days)
            return await store.prune(keep, now)
        finally:
            await store.dispose()

    return Target(service, database_url, run)


def check_older_than(services: Sequence[str], days: int | None) -> None:
    """Refuse, before anything is deleted, a retention that would prune processed-event
    records while their events can still be redelivered."""
    if days is None or days >= MIN_PROCESSED_EVENT_RETENTION_DAYS:
        return
    consumers = [service for service in services if service != "auth"]
    if consumers:
        hint = " (pass --service auth to prune only the auth service)" if "auth" in services else ""
        raise PruneError(
            f"--older-than-days {days} is too short for the {' and '.join(consumers)} "
            f"service{'s' * (len(consumers) > 1)}: processed events must be kept at least "
            f"{MIN_PROCESSED_EVENT_RETENTION_DAYS} days, since {PROCESSED_EVENTS_WHY}{hint}"
        )


def check_database_exists(target: Target) -> None:
    """A SQLite file that is not there is a mistake (a wrong path, or a service never run),
    not an empty database to create."""
    url = make_url(target.database_url)
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return
    if not Path(url.database).exists():
        raise PruneError(
            f"no {target.service} database at {url.database} (the service creates it when it "
            "first starts; is the path or the working directory wrong?)"
        )


async def prune_services(
    services: Sequence[str],
    older_than_days: int | None,
    report: Callable[[str, dict[str, int]], None],
    *,
    now: datetime | None = None,
) -> None:
    """Prune each service's database in turn, reporting its counts per table as it is done;
    every setting and database is checked before anything is deleted."""
    check_older_than(services, older_than_days)
    targets = [target(service) for service in services]
    for each in targets:
        check_database_exists(each)
    moment = now or datetime.now(UTC)
    older_than = None if older_than_days is None else timedelta(days=older_than_days)
    for each in targets:
        try:
            deleted = await each.prune(moment, older_than)
        except ValueError as error:  # a retention below a rule's minimum
            raise PruneError(one_line(error)) from None
        except Exception as error:  # the database is unreachable or not migrated
            where = make_url(each.database_url).render_as_string(hide_password=True)
            raise PruneError(
                f"pruning the {each.service} database ({where}) failed: {one_line(error)}"
            ) from None
        report(each.service, deleted)
