"""The local stack: `accord serve` (one service) and `accord up` (the whole platform)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape

from harness.cli.common import (
    RootOption,
    Service,
    err,
    find_project,
    load_project,
    out,
)

if TYPE_CHECKING:
    pass


DEFAULT_PORTS = {"auth": 3001, "user": 3002, "notification": 3003}


def serve(
    service: Annotated[Service, typer.Argument(help="Which service to run.")],
    port: Annotated[
        int | None, typer.Option("--port", help="Port (default: 3001, 3002, 3003).")
    ] = None,
    host: Annotated[str, typer.Option("--host", help="Interface to listen on.")] = "127.0.0.1",
    root: RootOption = None,
) -> None:
    """Run one service with uvicorn, configured from its environment variables."""
    import importlib
    import os

    from harness.stack.up import SERVICES, service_banner, with_docs
    from services.kit.startup import StartupError, configure_logging

    project = find_project(root)
    if project is not None:  # the settings' relative defaults (.accord/...) are the project's
        os.chdir(project.root)
    configure_logging()  # as `accord up` logs
    part = next(part for part in SERVICES if part.name == service.value)

    def around(app: Any) -> Any:
        # The services know nothing of the harness: the contracts' pages are added here.
        return app if project is None else with_docs(app, part, project.contracts_dir)

    def ready(url: str) -> None:
        out.print(service_banner(service.value, url, docs=project is not None), markup=False)

    module = importlib.import_module(f"services.{service.value}.main")
    try:
        module.serve(
            port=port or DEFAULT_PORTS[service.value], host=host, around=around, ready=ready
        )
    except (StartupError, ValueError) as error:  # each names the setting to fix
        err.print(f"[red]error:[/] {escape(str(error))}")
        raise typer.Exit(2) from None


def _port(flag: str, what: str) -> Any:
    return typer.Option(flag, help=f"Port of the {what}.")


def up(
    root: RootOption = None,
    reset: Annotated[
        bool, typer.Option("--reset", help="Start from empty state (deletes .accord/).")
    ] = False,
    host: Annotated[str, typer.Option("--host", help="Interface to listen on.")] = "127.0.0.1",
    auth_port: Annotated[int, _port("--auth-port", "auth service")] = 3001,
    user_port: Annotated[int, _port("--user-port", "user service")] = 3002,
    notification_port: Annotated[int, _port("--notification-port", "notification service")] = 3003,
    aws_port: Annotated[int, _port("--aws-port", "embedded AWS emulator")] = 4566,
    smtp_port: Annotated[int, _port("--smtp-port", "SMTP sink")] = 1025,
    mail_port: Annotated[int, _port("--mail-port", "mailbox web page and API")] = 8025,
    record: Annotated[
        Path | None,
        typer.Option(
            "--record",
            help="Append every event that crosses the bus to FILE (JSON lines), for "
            "`accord replay`.",
            dir_okay=False,
        ),
    ] = None,
    mock: Annotated[
        list[Service] | None,
        typer.Option(
            "--mock",
            metavar="<auth|user|notification>",
            help="Run this service as the HTTP mock of its OpenAPI contract (repeatable).",
        ),
    ] = None,
) -> None:
    """Run the whole platform locally: emulator, provisioning, SMTP sink and the services."""
    import os

    from harness.stack.up import PortInUseError, StackConfig, run_until_interrupted
    from services.kit.startup import StartupError, configure_logging

    project = load_project(root)
    config = StackConfig(
        project=project,
        host=host,
        ports={
            "auth": auth_port,
            "user": user_port,
            "notification": notification_port,
            "aws": aws_port,
            "smtp": smtp_port,
            "mail": mail_port,
        },
        endpoint=os.environ.get("AWS_ENDPOINT_URL") or os.environ.get("LOCALSTACK_ENDPOINT"),
        reset=reset,
        record=record.resolve() if record is not None else None,
        mock=tuple(service.value for service in mock or ()),
    )
    configure_logging(quiet=("werkzeug", "mail.log"))
    out.print("[bold]Accord[/] — starting the platform (Ctrl-C stops it)")
    try:
        run_until_interrupted(config, lambda line: out.print(line))
    # A port taken, a database that fails, --record on several topics.
    except (PortInUseError, StartupError, ValueError) as error:
        err.print(f"[red]error:[/] {escape(str(error))}")
        raise typer.Exit(2) from None
