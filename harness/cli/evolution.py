"""Schema evolution: `accord schemas publish`, `accord diff` and `accord check`."""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer
from rich.markup import escape

from harness.cli.common import RootOption

if TYPE_CHECKING:
    from mypy_boto3_glue import GlueClient

    from harness.evolution.catalog import Outcome
    from harness.evolution.diff import DiffReport
    from harness.project import Project

schemas_app = typer.Typer(
    help="Publish versioned event schemas, refusing incompatible ones.", no_args_is_help=True
)


class Registry(StrEnum):
    """Where `accord schemas publish` publishes."""

    dir = "dir"
    glue = "glue"


class OutputFormat(StrEnum):
    """How `accord diff` prints its report."""

    text = "text"
    json = "json"


def _glue_client(endpoint: str | None, state: Path) -> GlueClient:
    """Glue where the bus is: `--endpoint`, the environment, else the running `accord up`."""
    from harness.cli.common import bus_location

    client: GlueClient = bus_location(endpoint, state).client("glue")
    return client


_STYLES = {"published": "green", "unchanged": "dim", "refused": "red"}


def _show_outcome(outcome: Outcome) -> str:
    style = _STYLES[outcome.action]
    line = (
        f"  [{style}]{outcome.action:>9}[/] {escape(outcome.event_type)} "
        f"{escape(outcome.version)} [dim]({outcome.mode})[/]"
    )
    if outcome.breaking:
        line += f" [yellow]new major: {len(outcome.breaking)} breaking change(s)[/]"
    return line


@schemas_app.command("publish")
def publish(
    root: RootOption = None,
    registry: Annotated[
        Registry,
        typer.Option(
            "--registry",
            help="dir: the catalog directory only; glue: also AWS Glue Schema Registry.",
        ),
    ] = Registry.dir,
    to: Annotated[
        Path | None,
        typer.Option(
            "--to",
            help="The catalog directory (default: schemas/ in the project).",
            file_okay=False,
        ),
    ] = None,
    endpoint: Annotated[
        str | None,
        typer.Option(
            "--endpoint",
            help="Glue endpoint, e.g. a moto server (default: AWS_ENDPOINT_URL or "
            "LOCALSTACK_ENDPOINT, else the running `accord up` of the project, else real AWS when "
            "ACCORD_ENV=production).",
        ),
    ] = None,
    glue_registry: Annotated[
        str, typer.Option("--glue-registry", help="The Glue registry name.")
    ] = "accord-events",
) -> None:
    """Check every event schema against its published versions and publish the new ones."""
    from harness.cli.common import err, load_project, out
    from harness.evolution import catalog

    project = load_project(root)
    directory = (to if to is not None else project.root / catalog.DEFAULT_CATALOG).resolve()
    shown = project.relative(directory)
    try:
        publication = catalog.plan(project, directory)
    except catalog.CatalogError as error:
        err.print(f"[red]error:[/] {escape(str(error))}")
        raise typer.Exit(1) from None
    out.print(f"event schemas from contracts/asyncapi against the catalog in {escape(shown)}")
    for outcome in publication.outcomes:
        out.print(_show_outcome(outcome))
    if publication.refused:
        for outcome in publication.refused:
            for line in outcome.describe():
                err.print(f"[red]refused:[/] {escape(line)}")
        count = len(publication.refused)
        err.print(
            f"{count} event schema{'s' * (count != 1)} refused; nothing was published"
            + (" (no Glue call was made)" if registry is Registry.glue else "")
        )
        raise typer.Exit(1)
    glue = None
    if registry is Registry.glue:
        state = project.root / ".accord"
        glue = catalog.GlueTarget(lambda: _glue_client(endpoint, state), glue_registry)
        out.print(f"mirroring the catalog to Glue registry {escape(glue_registry)}")
    try:
        catalog.apply(publication, glue=glue, progress=lambda line: out.print(escape(line)))
    except catalog.CatalogError as error:
        err.print(f"[red]error:[/] {escape(str(error))}")
        raise typer.Exit(1) from None
    published = publication.published
    for event_type in publication.modes_changed:
        out.print(
            f"recorded {escape(event_type)}'s compatibility mode "
            f"{publication.catalog.mode(event_type)} in {escape(shown)}"
        )
    if not published:
        out.print(
            f"nothing to publish: all {len(publication.outcomes)} event schemas are already "
            f"published at these versions in {escape(shown)}"
        )
    else:
        out.print(
            f"published {len(published)} schema version{'s' * (len(published) != 1)} to "
            f"{escape(shown)} (index.json, index.html)"
        )


def _print_report(report: DiffReport) -> None:
    from harness.cli.common import out

    current = None
    for change in report.changes:
        if change.document != current:
            current = change.document
            out.print(f"[bold]{escape(current)}[/]")
        style = "red" if change.breaking else "green"
        subject = f" {escape(change.subject)}" if change.subject else ""
        pointer = f" [dim]#{escape(change.pointer)}[/]" if change.pointer else ""
        out.print(f"  [{style}]{change.severity.value:>12}[/]{subject} {change.rule}{pointer}")
        out.print(f"               {escape(change.message)}", style="dim")


def _errors() -> tuple[type[Exception], ...]:
    """What makes a comparison impossible (as opposed to a conflict found by it)."""
    from harness.authoring.contracts import ContractLoadError
    from harness.evolution.catalog import CatalogError
    from harness.evolution.diff import DiffError
    from harness.evolution.events import EventSchemaError
    from harness.evolution.pacts import PactError

    return (DiffError, PactError, CatalogError, EventSchemaError, ContractLoadError, OSError)


def _project(root: Path | None, output: OutputFormat, command: str) -> Project:
    from harness.project import Project, ProjectNotFoundError

    try:
        return Project.load(root) if root is not None else Project.find()
    except ProjectNotFoundError as error:
        _fail(output, command, error)


def _fail(output: OutputFormat, command: str, error: Exception) -> NoReturn:
    """A comparison that cannot be made: exit 2, saying why (as JSON with `--format json`)."""
    from harness.cli.common import err

    if output is OutputFormat.json:
        kinds = {
            "DiffError": "diff",
            "PactError": "pact",
            "CatalogError": "catalog",
            "EventSchemaError": "event-schema",
            "ContractLoadError": "contract",
            "ProjectNotFoundError": "project",
        }
        answer = {
            "error": {
                "command": command,
                "kind": kinds.get(type(error).__name__, "error"),
                "message": str(error),
            }
        }
        typer.echo(json.dumps(answer, indent=2))
    else:
        err.print(f"[red]error:[/] {escape(str(error))}")
    raise typer.Exit(2)


def diff(
    base: Annotated[
        str, typer.Option("--base", help="The git ref to compare with, e.g. origin/main.")
    ],
    root: RootOption = None,
    output: Annotated[
        OutputFormat, typer.Option("--format", help="text for people, json for machines.")
    ] = OutputFormat.text,
) -> None:
    """List every change to the contracts since a git ref, with its severity."""
    from harness.cli.common import out
    from harness.evolution.diff import diff_contracts

    project = _project(root, output, "diff")
    try:
        report = diff_contracts(project, base)
    except _errors() as error:
        _fail(output, "diff", error)
    breaking = len(report.breaking)
    if output is OutputFormat.json:
        typer.echo(json.dumps(report.as_json(), indent=2))
    else:
        _print_report(report)
        if not report.changes:
            out.print(f"no changes to the contracts since {escape(base)}")
        else:
            out.print(
                f"{breaking} breaking, {len(report.changes) - breaking} non-breaking "
                f"change{'s' * (len(report.changes) != 1)} since {escape(base)} "
                f"in {len(report.documents)} contract documents"
            )
    if breaking:
        raise typer.Exit(1)


def check(
    base: Annotated[
        str, typer.Option("--base", help="The git ref to compare with, e.g. origin/main.")
    ],
    root: RootOption = None,
    catalog: Annotated[
        Path | None,
        typer.Option(
            "--catalog",
            help="The published event schema catalog (default: schemas/ in the project).",
            file_okay=False,
        ),
    ] = None,
    output: Annotated[
        OutputFormat, typer.Option("--format", help="text for people, json for machines.")
    ] = OutputFormat.text,
) -> None:
    """The merge gate: breaking contract changes, event schemas against the catalog, and the
    consumers' pacts against the changed contracts. Exit 1 on any conflict."""
    from harness.cli.common import out
    from harness.evolution.gate import check as run_check

    project = _project(root, output, "check")
    try:
        report = run_check(project, base, catalog)
    except _errors() as error:
        _fail(output, "check", error)
    if output is OutputFormat.json:
        typer.echo(json.dumps(report.as_json(), indent=2))
        raise typer.Exit(0 if report.safe else 1)
    diff_report = report.diff
    out.print(
        f"contract changes since {escape(base)}: {len(diff_report.breaking)} breaking, "
        f"{len(diff_report.changes) - len(diff_report.breaking)} non-breaking"
    )
    out.print(f"event schemas against the catalog: {report.events_checked} checked")
    out.print(
        f"consumer pacts: {report.interactions_checked} interactions in "
        f"{len(report.pact_files)} pact files checked against the contracts"
    )
    for conflict in report.conflicts:
        consumers = ", ".join(conflict.consumers) or "no known consumer"
        subject = f" {escape(conflict.subject)}" if conflict.subject else ""
        pointer = f" [dim]{escape(conflict.document)}#{escape(conflict.pointer)}[/]"
        out.print(
            f"[red]conflict[/] ({conflict.kind}) breaks [bold]{escape(consumers)}[/]:"
            f"{subject} {escape(conflict.rule)}{pointer}"
        )
        out.print(f"    {escape(conflict.message)}", style="dim")
    if report.safe:
        out.print("[green]safe to merge[/]")
        return
    count = len(report.conflicts)
    out.print(f"[red]not safe to merge:[/] {count} conflict{'s' * (count != 1)}")
    raise typer.Exit(1)
