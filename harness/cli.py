"""The `accord` command line."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

from harness.cli_options import EndpointOption, RootOption, use_accord_classes
from harness.project import GenerateTarget, Project, ProjectNotFoundError

if TYPE_CHECKING:
    from harness.dlq import DeadLetterQueue
    from services.kit.aws import BusLocation

app = typer.Typer(
    name="accord",
    help="Accord: contract-first services and the harness that proves they keep their contracts.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


def load_project(root: Path | None) -> Project:
    try:
        return Project.load(root) if root is not None else Project.find()
    except ProjectNotFoundError as error:
        err.print(f"[red]error:[/] {escape(str(error))}")
        raise typer.Exit(2) from None


def find_project(root: Path | None) -> Project | None:
    """The project `--root` names (an error if it is none), else the one around the working
    directory, else None: for the commands that also work outside a project."""
    if root is not None:
        return load_project(root)
    try:
        return Project.find()
    except ProjectNotFoundError:
        return None


@contextlib.contextmanager
def in_project(root: Path | None) -> Iterator[None]:
    """Run a command configured from the services' settings from the project's root, so that
    their relative defaults (`.accord/auth.db`, `.accord/auth-keys`, ...) are the project's
    wherever the command is run; outside a project, from the working directory."""
    project = find_project(root)
    if project is None:
        yield
        return
    with contextlib.chdir(project.root):
        yield


@app.command()
def generate(
    root: RootOption = None,
    check: Annotated[
        bool,
        typer.Option(
            "--check",
            help="Write nothing; exit 1 if generated/ differs from what the contracts generate.",
        ),
    ] = False,
) -> None:
    """Regenerate the pydantic models in generated/ from the contracts."""
    from harness import codegen

    project = load_project(root)
    started = time.perf_counter()

    def progress(target: GenerateTarget) -> None:
        err.print(f"  {target.contract.as_posix()} → {target.module.as_posix()}", style="dim")

    try:
        if check:
            drifts = codegen.check(project, progress)
        else:
            results = codegen.write(project, codegen.expected_files(project, progress))
    except codegen.GenerationError as error:
        err.print(f"[red]error:[/] {escape(str(error))}")
        raise typer.Exit(2) from None
    elapsed = time.perf_counter() - started

    if not check:
        for path, status in results:
            if status != "unchanged":
                out.print(f"{status:>9} {path.as_posix()}")
        changed = sum(status != "unchanged" for _, status in results)
        out.print(
            f"{len(project.targets)} contracts, {changed} files written, "
            f"{len(results) - changed} unchanged ({elapsed:.1f} s)"
        )
        return
    if not drifts:
        out.print(f"generated/ matches the contracts ({len(project.targets)}, {elapsed:.1f} s)")
        return
    for drift in drifts:
        err.print(f"[red]drift:[/] {escape(drift.describe())}")
        if drift.diff:
            lines = drift.diff.splitlines()
            err.print("\n".join(lines[:40]) + ("\n  …" if len(lines) > 40 else ""), markup=False)
    err.print("run `accord generate` and commit the result")
    raise typer.Exit(1)


@app.command()
def lint(
    root: RootOption = None,
    files: Annotated[
        list[Path] | None,
        typer.Argument(help="Contract files to check (default: every file under contracts/)."),
    ] = None,
) -> None:
    """Validate the contracts: specifications, $refs, examples and the project's rules."""
    from harness.lint import lint_project

    project = load_project(root)
    report = lint_project(project, files)
    for finding in report.findings:
        err.print(str(finding), markup=False)
    if report.ok:
        out.print(f"{len(report.documents)} contract files, no problems")
        return
    count = len(report.findings)
    err.print(f"{count} problem{'s' * (count != 1)} in {len(report.documents)} contract files")
    raise typer.Exit(1)


PrefixOption = Annotated[
    str, typer.Option("--prefix", help="Prefix for every topic and queue name (isolation).")
]


def bus_location(endpoint: str | None, state: Path | None) -> BusLocation:
    """The bus a command uses (harness/stack/running.py `find_bus`): `--endpoint`, else the
    environment, else the running `accord up` whose state directory is `state`."""
    from harness.stack.running import NoBusError, find_bus

    try:
        return find_bus(endpoint, state)
    except (NoBusError, ValueError) as error:
        err.print(f"[red]error:[/] {escape(str(error))}")
        raise typer.Exit(2) from None


def stack_state(project: Project | None) -> Path | None:
    """Where the project's `accord up` keeps its state (and its stack.json)."""
    return project.root / ".accord" if project is not None else None


@app.command()
def provision(
    root: RootOption = None, endpoint: EndpointOption = None, prefix: PrefixOption = ""
) -> None:
    """Create the topics, queues, DLQs and subscriptions the AsyncAPI bindings declare."""
    from botocore.exceptions import BotoCoreError, ClientError

    from harness.provision import Change, Provisioner, TopologyError, topology_from_contracts

    project = load_project(root)
    location = bus_location(endpoint, stack_state(project))
    try:
        topology = topology_from_contracts(project).with_prefix(prefix)
    except TopologyError as error:
        err.print(f"[red]error:[/] {escape(str(error))}")
        raise typer.Exit(2) from None
    where = location.endpoint_url or f"AWS {location.region}"
    out.print(f"provisioning {where} from contracts/asyncapi")

    def show(change: Change) -> None:
        style = {"created": "green", "updated": "yellow", "unchanged": "dim"}[change.action]
        detail = f" ({change.detail})" if change.detail else ""
        out.print(
            f"  [{style}]{change.action:>9}[/] {change.kind:<12} {escape(change.name)}{detail}"
        )

    try:
        changes = Provisioner(location.sns(), location.sqs(), show).apply(topology)
    except (BotoCoreError, ClientError) as error:
        err.print(f"[red]error:[/] {escape(str(error))}")
        raise typer.Exit(1) from None
    created = sum(c.action == "created" for c in changes)
    updated = sum(c.action == "updated" for c in changes)
    if created == updated == 0:
        out.print(f"nothing to change: all {len(changes)} resources exist as declared")
    else:
        out.print(
            f"{created} created, {updated} updated, {len(changes) - created - updated} unchanged"
        )


dlq_app = typer.Typer(help="Inspect and redrive dead-lettered messages.", no_args_is_help=True)
app.add_typer(dlq_app, name="dlq")
QueueArgument = Annotated[
    str, typer.Argument(help="The consumer's queue, e.g. accord-user-service.")
]


def open_dead_letter_queue(queue: str, endpoint: str | None, root: Path | None) -> DeadLetterQueue:
    from botocore.exceptions import BotoCoreError, ClientError

    from harness.dlq import DeadLetterQueue
    from services.kit.sqs import QueueNotFoundError

    location = bus_location(endpoint, stack_state(find_project(root)))
    try:
        return DeadLetterQueue(location.sqs(), queue)
    except (QueueNotFoundError, BotoCoreError, ClientError) as error:
        err.print(f"[red]error:[/] {escape(str(error))}")
        raise typer.Exit(1) from None


@dlq_app.command("list")
def dlq_list(
    queue: QueueArgument, endpoint: EndpointOption = None, root: RootOption = None
) -> None:
    """List the dead-lettered messages of QUEUE with their reason and receive count."""
    dead_letters = open_dead_letter_queue(queue, endpoint, root)
    letters = dead_letters.peek()
    if not letters:
        out.print(f"{dead_letters.name} is empty")
        return
    from rich.table import Table

    table = Table(title=dead_letters.name)
    table.add_column("message id", no_wrap=True, min_width=36)
    table.add_column("event type", no_wrap=True)
    table.add_column("receives", justify="right")
    table.add_column("reason", overflow="fold")
    for letter in letters:
        table.add_row(
            letter.message_id,
            letter.message.attributes.get("eventType", "?"),
            str(letter.receive_count),
            letter.reason or "exceeded the queue's maximum receives",
        )
    out.print(table)


@dlq_app.command("show")
def dlq_show(
    queue: QueueArgument,
    message_id: Annotated[str, typer.Argument(help="The message id, from `accord dlq list`.")],
    endpoint: EndpointOption = None,
    root: RootOption = None,
) -> None:
    """Show one dead-lettered message: attributes, reason and body."""
    import json

    for letter in open_dead_letter_queue(queue, endpoint, root).peek():
        if letter.message_id == message_id:
            out.print_json(
                json.dumps(
                    {
                        "messageId": letter.message_id,
                        "receiveCount": letter.receive_count,
                        "reason": letter.reason,
                        "attributes": dict(letter.message.attributes),
                        "body": letter.message.body,
                    }
                )
            )
            return
    err.print(f"[red]error:[/] no message {escape(message_id)} in the dead-letter queue")
    raise typer.Exit(1)


@dlq_app.command("redrive")
def dlq_redrive(
    queue: QueueArgument,
    message_id: Annotated[
        str | None, typer.Option("--message-id", help="Redrive only this message.")
    ] = None,
    endpoint: EndpointOption = None,
    root: RootOption = None,
) -> None:
    """Move dead-lettered messages back to QUEUE to be processed again."""
    dead_letters = open_dead_letter_queue(queue, endpoint, root)
    moved = dead_letters.redrive(message_id)
    if message_id is not None and not moved:
        err.print(f"[red]error:[/] no message {escape(message_id)} in {dead_letters.name}")
        raise typer.Exit(1)
    out.print(
        f"moved {len(moved)} message{'s' * (len(moved) != 1)} from {dead_letters.name} to {queue}"
    )


class Service(StrEnum):
    """The services `accord serve` can run."""

    auth = "auth"
    user = "user"
    notification = "notification"


DEFAULT_PORTS = {"auth": 3001, "user": 3002, "notification": 3003}


@app.command()
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


mock_app = typer.Typer(
    help="Stand in for a service or a producer, from the contracts.", no_args_is_help=True
)
app.add_typer(mock_app, name="mock")


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

    from harness.contracts import ContractLoadError, DanglingReferenceError
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


def _port(flag: str, what: str) -> Any:
    return typer.Option(flag, help=f"Port of the {what}.")


@app.command()
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


from harness.cli_schemas import check, diff, schemas_app  # noqa: E402 - after `app` is defined

app.add_typer(schemas_app, name="schemas")
app.command()(diff)
app.command()(check)

from harness.cli_replay import replay  # noqa: E402
from harness.cli_verify import verify  # noqa: E402

app.command()(verify)
app.command()(replay)


roles_app = typer.Typer(help="Manage roles in the auth service's database.", no_args_is_help=True)
app.add_typer(roles_app, name="roles")


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
    from services.auth.roles import grant_role
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
app.add_typer(keys_app, name="keys")

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
    from harness.keys import KeysError, rotate

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
    from harness.keys import KeysError, listing

    try:
        with in_project(root):
            lines = listing(directory)
    except KeysError as error:
        err.print(f"[red]error:[/] {escape(str(error))}")
        raise typer.Exit(1) from None
    for line in lines:
        out.print(escape(line))


@app.command()
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

    from harness.prune import SERVICES, PruneError, prune_services

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


use_accord_classes(app)  # last: every command is registered by now
