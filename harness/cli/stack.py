"""The local stack: `accord serve` (one service) and `accord up` (the whole platform)."""

from __future__ import annotations

import enum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from harness.cli.common import (
    RootOption,
    err,
    find_project,
    load_project,
    out,
)


def serve(
    service: Annotated[
        str,
        typer.Argument(
            metavar="SERVICE",
            help="Which service to run: one of the project's [[tool.accord.service]] entries.",
        ),
    ],
    port: Annotated[
        int | None,
        typer.Option("--port", help="Port (default: the service's, e.g. 3001 for auth)."),
    ] = None,
    host: Annotated[str, typer.Option("--host", help="Interface to listen on.")] = "127.0.0.1",
    root: RootOption = None,
    log_format: LogFormatOption = None,
) -> None:
    """Run one service with uvicorn, configured from its environment variables."""
    import importlib
    import os

    from harness.stack.up import service_banner, with_docs
    from services.kit.startup import StartupError, configure_logging

    project = find_project(root)
    part = None
    if project is not None:
        os.chdir(project.root)  # the settings' relative defaults (.accord/...) are the project's
        try:
            part = project.service(service)
        except LookupError as error:
            err.print(f"[red]error:[/] {escape(str(error))}")
            raise typer.Exit(2) from None
    try:
        module = importlib.import_module(f"services.{service}.main")
    except ModuleNotFoundError as error:
        if not (error.name or "").startswith(("services", f"services.{service}")):
            raise
        err.print(f"[red]error:[/] no service {escape(service)!r}: services/{service}/main.py")
        raise typer.Exit(2) from None
    # As `accord up` logs.
    configure_logging(log_format=log_format.value if log_format is not None else None)

    def around(app: Any) -> Any:
        # The services know nothing of the harness: the contracts' pages are added here.
        return app if project is None or part is None else with_docs(app, part, project.root)

    def ready(url: str) -> None:
        out.print(service_banner(service, url, docs=part is not None), markup=False)

    default_port = part.port if part is not None else module.DEFAULT_PORT
    try:
        module.serve(port=port or default_port, host=host, around=around, ready=ready)
    except (StartupError, ValueError) as error:  # each names the setting to fix
        err.print(f"[red]error:[/] {escape(str(error))}")
        raise typer.Exit(2) from None


class LogFormat(enum.StrEnum):
    """How log lines are written."""

    text = "text"
    json = "json"


LogFormatOption = Annotated[
    LogFormat | None,
    typer.Option(
        "--log-format",
        help="Log lines as text, or one JSON object per line with trace and event ids "
        "(default: ACCORD_LOG_FORMAT, else text).",
    ),
]


def _ports(values: list[str]) -> dict[str, int]:
    """`--port NAME=PORT` options as a mapping; `typer.BadParameter` for a malformed one."""
    ports = {}
    for value in values:
        name, _, number = value.partition("=")
        if not name or not number.isdigit() or not 1 <= int(number) <= 65535:
            raise typer.BadParameter(
                f"{value!r} is not NAME=PORT (e.g. gateway=3100)", param_hint="--port"
            )
        ports[name.strip()] = int(number)
    return ports


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
    port: Annotated[
        list[str] | None,
        typer.Option(
            "--port",
            metavar="NAME=PORT",
            help="Port of any part by name, e.g. gateway=3100 (repeatable).",
        ),
    ] = None,
    mock: Annotated[
        list[str] | None,
        typer.Option(
            "--mock",
            metavar="SERVICE",
            help="Run this service as the HTTP mock of its OpenAPI contract (repeatable).",
        ),
    ] = None,
    log_format: LogFormatOption = None,
) -> None:
    """Run the whole platform locally: emulator, provisioning, SMTP sink and the services."""
    import os

    from harness.stack.up import PortInUseError, StackConfig, run_until_interrupted
    from services.kit.startup import StartupError, configure_logging

    project = load_project(root)
    ports = {
        "auth": auth_port,
        "user": user_port,
        "notification": notification_port,
        "aws": aws_port,
        "smtp": smtp_port,
        "mail": mail_port,
    } | _ports(port or [])
    for name in mock or ():
        try:
            project.service(name)
        except LookupError as error:
            raise typer.BadParameter(str(error), param_hint="--mock") from None
    try:
        config = StackConfig(
            project=project,
            host=host,
            ports=ports,
            endpoint=os.environ.get("AWS_ENDPOINT_URL") or os.environ.get("LOCALSTACK_ENDPOINT"),
            reset=reset,
            record=record.resolve() if record is not None else None,
            mock=tuple(mock or ()),
        )
    except ValueError as error:  # a --port for no part of the stack
        raise typer.BadParameter(str(error), param_hint="--port") from None
    configure_logging(
        quiet=("werkzeug", "mail.log"),
        log_format=log_format.value if log_format is not None else None,
    )
    out.print("[bold]Accord[/] — starting the platform (Ctrl-C stops it)")
    try:
        run_until_interrupted(config, lambda line: out.print(line))
    # A port taken, a database that fails, --record on several topics.
    except (PortInUseError, StartupError, ValueError) as error:
        err.print(f"[red]error:[/] {escape(str(error))}")
        raise typer.Exit(2) from None
