"""`accord mock auth|user|notification|openapi|events`: stand-ins for a service or a producer,
from the contracts."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from harness.cli.common import (
    EndpointOption,
    PrefixOption,
    RootOption,
    Service,
    bus_location,
    err,
    load_project,
    out,
    stack_state,
)

if TYPE_CHECKING:
    pass


mock_app = typer.Typer(
    help="Stand in for a service or a producer, from the contracts.", no_args_is_help=True
)


MockPortOption = Annotated[
    int | None, typer.Option("--port", help="Port (default: 4001, 4002, 4003).")
]
MockSeedOption = Annotated[int, typer.Option("--seed", help="Seed of the generated responses.")]
MockStatefulOption = Annotated[
    bool,
    typer.Option("--stateful", help="Keep what POST creates for GET, PATCH and DELETE."),
]
MockHostOption = Annotated[str, typer.Option("--host", help="Interface to listen on.")]


def _serve_mock(contract: Path, port: int, host: str, seed: int, stateful: bool) -> None:
    """Serve the HTTP mock of one OpenAPI contract (harness/mock/http.py) until interrupted."""
    import logging

    import uvicorn

    from harness.authoring.contracts import ContractLoadError, DanglingReferenceError
    from harness.mock.http import build_app

    try:
        mock = build_app(contract, seed=seed, stateful=stateful)
    except (ContractLoadError, DanglingReferenceError) as error:
        err.print(f"[red]error:[/] {escape(str(contract))}: {escape(str(error))}")
        raise typer.Exit(2) from None
    logging.basicConfig(level=logging.INFO, format="%(asctime)s mock %(message)s")
    out.print(f"mock of {contract.name} on http://{host}:{port}", markup=False)
    uvicorn.run(mock, host=host, port=port, log_level="warning")


def _mock_service_command(name: str, default_port: int) -> None:
    def command(
        port: MockPortOption = None,
        seed: MockSeedOption = 0,
        stateful: MockStatefulOption = False,
        host: MockHostOption = "127.0.0.1",
        root: RootOption = None,
    ) -> None:
        contract = load_project(root).contracts_dir / "openapi" / f"{name}-service.yaml"
        _serve_mock(contract, port or default_port, host, seed, stateful)

    command.__doc__ = (
        f"Answer as the {name} service's OpenAPI contract says: requests validated, responses "
        "from its examples (`Prefer: code=404`, `Prefer: example=NAME`)."
    )
    mock_app.command(name)(command)


_mock_service_command("auth", 4001)
_mock_service_command("user", 4002)
_mock_service_command("notification", 4003)


@mock_app.command("openapi")
def mock_openapi(
    contract: Annotated[
        Path,
        typer.Option("--contract", help="An OpenAPI 3.1 file (relative to --root when given)."),
    ],
    port: Annotated[int, typer.Option("--port", help="Port.")] = 4000,
    seed: MockSeedOption = 0,
    stateful: MockStatefulOption = False,
    host: MockHostOption = "127.0.0.1",
    root: RootOption = None,
) -> None:
    """Answer as any OpenAPI contract says, e.g. one outside the project."""
    if root is not None and not contract.is_absolute():
        contract = root / contract
    if not contract.is_file():
        err.print(f"[red]error:[/] {escape(str(contract))} is not a file")
        raise typer.Exit(2)
    _serve_mock(contract, port, host, seed, stateful)


@mock_app.command("events")
def mock_events(
    endpoint: EndpointOption = None,
    service: Annotated[
        Service | None,
        typer.Option(
            "--service", help="Send what this service receives (default: every receiving service)."
        ),
    ] = None,
    count: Annotated[
        int | None,
        typer.Option(
            "--count",
            min=1,
            help="Send N events per message type generated from the schemas, instead of the "
            "AsyncAPI examples.",
        ),
    ] = None,
    seed: Annotated[
        int, typer.Option("--seed", help="Seed of the generated events (with --count).")
    ] = 0,
    to_queue: Annotated[
        bool,
        typer.Option(
            "--to-queue", help="Send straight to the service's SQS queue instead of the topic."
        ),
    ] = False,
    prefix: PrefixOption = "",
    root: RootOption = None,
) -> None:
    """Publish the events a service receives, with the real producer's message attributes."""
    from botocore.exceptions import BotoCoreError, ClientError

    from harness.mock.events import MockEventsError, Sent, plan, select, send
    from services.kit.sns import TopicNotFoundError

    project = load_project(root)
    location = bus_location(endpoint, stack_state(project))

    def show(sent: Sent) -> None:
        out.print(f"{sent.event_type:<34} {sent.event_id}  → {escape(sent.where)}")

    try:
        planned = plan(select(project, service.value if service else None), count, seed)
        sent = send(
            planned, location.sns(), location.sqs(), to_queue=to_queue, prefix=prefix, on_sent=show
        )
    except MockEventsError as error:
        err.print(f"[red]error:[/] {escape(str(error))}")
        raise typer.Exit(2) from None
    except (TopicNotFoundError, BotoCoreError, ClientError) as error:
        err.print(f"[red]error:[/] {escape(str(error))} (run `accord provision`?)")
        raise typer.Exit(1) from None
    out.print(f"{len(sent)} event{'s' * (len(sent) != 1)} sent")
