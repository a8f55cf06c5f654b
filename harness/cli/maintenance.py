"""Maintenance of a deployment's stores: `accord migrate`, `accord roles grant`,
`accord keys rotate|list` and `accord prune`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from harness.cli.common import (
    RootOption,
    Service,
    err,
    in_project,
    out,
)

if TYPE_CHECKING:
    pass


def migrate(
    service: Annotated[Service, typer.Argument(help="The service whose database to migrate.")],
    check: Annotated[
        bool,
        typer.Option(
            "--check",
            help="Only say where the database stands; exit 1 if it is behind the newest revision.",
        ),
    ] = False,
    root: RootOption = None,
) -> None:
    """Migrate SERVICE's database to the newest revision of its Alembic history, as a deploy
    step before its new replicas start (they do not migrate on start with
    ACCORD_ENV=production). The database is the service's own setting (AUTH_DATABASE_URL,
    ...); on PostgreSQL an advisory lock makes concurrent runs take turns."""
    import asyncio

    from harness.maintenance.migrate import MigrateError
    from harness.maintenance.migrate import migrate as run

    try:
        with in_project(root):
            migrated = asyncio.run(run(service.value, check=check))
    except MigrateError as error:
        err.print(f"[red]error:[/] {escape(str(error))}")
        raise typer.Exit(1) from None
    out.print(escape(migrated.report()))
    if migrated.behind:
        raise typer.Exit(1)


roles_app = typer.Typer(help="Manage roles in the auth service's database.", no_args_is_help=True)


@roles_app.command("grant")
def roles_grant(
    email: Annotated[str, typer.Argument(help="The account's email address.")],
    role: Annotated[str, typer.Argument(help="The role to grant, e.g. admin.")],
    database_url: Annotated[
        str | None,
        typer.Option(
            "--database-url",
            help="The auth database (default: AUTH_DATABASE_URL, else the project's "
            "sqlite:///.accord/auth.db).",
        ),
    ] = None,
    root: RootOption = None,
) -> None:
    """Grant ROLE to the account with EMAIL (how the first admin is made)."""
    import asyncio

    from services.auth.domain import UnknownEmailError
    from services.auth.grants import grant_role
    from services.auth.settings import SettingsError, load_settings

    try:
        with in_project(root):
            url = database_url or load_settings().database_url
            asyncio.run(grant_role(url, email, role))
    except (SettingsError, UnknownEmailError, ValueError) as error:
        err.print(f"[red]error:[/] {escape(str(error))}")
        raise typer.Exit(1) from None
    out.print(f"granted {role} to {email}")


keys_app = typer.Typer(
    help="Rotate and list the auth service's signing keys (its key ring).", no_args_is_help=True
)

KeyRingOption = Annotated[
    Path | None,
    typer.Option(
        "--dir",
        help="The key ring (default: AUTH_SIGNING_KEY_DIR, else the project's .accord/auth-keys).",
        file_okay=False,
        resolve_path=True,
    ),
]


@keys_app.command("rotate")
def keys_rotate(directory: KeyRingOption = None, root: RootOption = None) -> None:
    """Add a signing key: published at once, it signs new access tokens after
    AUTH_SIGNING_KEY_PUBLISH_AHEAD_SECONDS (60 s); earlier keys stay published until their
    tokens have expired. A running auth service picks it up within a second."""
    from harness.maintenance.keys import KeysError, rotate

    try:
        with in_project(root):
            lines = rotate(directory)
    except KeysError as error:
        err.print(f"[red]error:[/] {escape(str(error))}")
        raise typer.Exit(1) from None
    for line in lines:
        out.print(escape(line))


@keys_app.command("list")
def keys_list(directory: KeyRingOption = None, root: RootOption = None) -> None:
    """The keys of the ring, oldest first: kid, creation time, status (next, current,
    previous: still published, expired: withdrawn)."""
    from harness.maintenance.keys import KeysError, listing

    try:
        with in_project(root):
            lines = listing(directory)
    except KeysError as error:
        err.print(f"[red]error:[/] {escape(str(error))}")
        raise typer.Exit(1) from None
    for line in lines:
        out.print(escape(line))


def prune(
    service: Annotated[
        Service | None,
        typer.Option("--service", help="Prune only this service's database (default: all)."),
    ] = None,
    older_than_days: Annotated[
        int | None,
        typer.Option(
            "--older-than-days",
            min=1,
            help="Delete what ended more than N days ago (default: each service's retention "
            "settings; processed events need at least 15).",
        ),
    ] = None,
    root: RootOption = None,
) -> None:
    """Delete expired and published records now, as each service does periodically: published
    outbox rows, used or expired tokens, old processed-event records."""
    import asyncio

    from harness.maintenance.prune import SERVICES, PruneError, prune_services

    def report(name: str, deleted: dict[str, int]) -> None:
        for table, count in deleted.items():
            out.print(f"{name}.{table}: {count} deleted")

    services = [service.value] if service is not None else list(SERVICES)
    try:
        with in_project(root):
            asyncio.run(prune_services(services, older_than_days, report))
    except PruneError as error:
        err.print(f"[red]error:[/] {escape(str(error))}")
        raise typer.Exit(1) from None
