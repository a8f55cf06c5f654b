"""`accord verify`: the conformance suite with a progress bar and a table per service."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Column, Table

from harness.cli.common import RootOption
from harness.cli.evolution import OutputFormat
from harness.conformance.verify import LAYERS, Summary, VerifyError, layer_name, run
from harness.project import Project

# The table names each layer as --layer does (harness.conformance.verify.LAYERS); the rest are
# "other".
LAYER_TITLES = {**{name: name for name in LAYERS}, "other": "other contract tests"}
FAILURE_LINES = 25


def verify(
    root: RootOption = None,
    service: Annotated[
        list[str] | None,
        typer.Option(
            "--service",
            metavar="<name>",
            help="Only this service (a name in [[tool.accord.service]]); repeatable.",
        ),
    ] = None,
    layer: Annotated[
        list[str] | None,
        typer.Option(
            "--layer",
            metavar="<name>",
            help=f"Only this layer ({', '.join(LAYERS)}: the names in the tables); repeatable.",
        ),
    ] = None,
    output_format: Annotated[
        OutputFormat, typer.Option("--format", help="text: tables; json: one object, for CI.")
    ] = OutputFormat.text,
) -> None:
    """Run the conformance suite (pacts, schemathesis, contract-code, rbac): a table per
    service; exit 1 on any failure."""
    from harness.cli.common import err, load_project, out

    project = load_project(root)
    services = tuple(entry.name for entry in project.services)
    layers = [layer_name(value) or value for value in layer or ()]
    for value, known, flag in ((service, services, "--service"), (layers, LAYERS, "--layer")):
        unknown = sorted(set(value or ()) - set(known))
        if unknown:
            err.print(
                f"[red]error:[/] {flag}: unknown {escape(', '.join(unknown))}; "
                f"one of {', '.join(known)}"
            )
            raise typer.Exit(2)

    try:
        summary = _run_with_progress(project, service or (), layers)
    except VerifyError as error:
        err.print(f"[red]error:[/] {escape(str(error))}")
        raise typer.Exit(2) from None

    if output_format is OutputFormat.json:
        out.print_json(json.dumps(summary.as_json()))
    else:
        _print_report(summary)
    raise typer.Exit(0 if summary.ok else 1)


def _run_with_progress(project: Project, services: Any, layers: Any) -> Summary:
    from harness.cli.common import err

    # The count and the time come first and the bar is short, so that at 80 columns only the
    # test's name is cut (with an ellipsis), never the count.
    progress = Progress(
        TextColumn("[bold]verify[/]"),
        MofNCompleteColumn(),
        BarColumn(bar_width=16),
        TimeElapsedColumn(),
        TextColumn(
            "{task.description}",
            table_column=Column(no_wrap=True, overflow="ellipsis", ratio=1),
        ),
        console=err,
        transient=True,
        expand=True,
    )
    task = progress.add_task("collecting…", total=None)
    found = 0

    def on_event(event: dict[str, Any]) -> None:
        nonlocal found
        if event["kind"] == "collecting":
            found += int(event["tests"])
            module = Path(str(event["nodeid"])).name
            progress.update(task, description=escape(f"collecting… {module} ({found} found)"))
        elif event["kind"] == "collected":
            progress.update(task, total=len(event["tests"]), description="")
        elif event["kind"] == "started":
            progress.update(task, description=escape(_short(event["nodeid"])))
        elif event["kind"] == "result":
            progress.advance(task)

    with progress:
        return run(project, services=services, layers=layers, on_event=on_event)


def _short(nodeid: str) -> str:
    path, _, name = nodeid.partition("::")
    return f"{Path(path).stem}::{name}"[:70]


def _print_report(summary: Summary) -> None:
    from harness.cli.common import out

    for service in summary.services():
        table = Table(title=f"[bold]{escape(service)}[/]", title_justify="left")
        table.add_column("layer")
        table.add_column("result")
        table.add_column("tests", justify="right")
        table.add_column("failed", justify="right")
        table.add_column("skipped", justify="right")
        table.add_column("cases", justify="right")
        table.add_column("time", justify="right")
        for layer in summary.layers(service):
            tally = summary.tallies[service][layer]
            table.add_row(
                LAYER_TITLES.get(layer, escape(layer)),
                "[green]pass[/]" if tally.ok else "[red]FAIL[/]",
                str(tally.tests),
                str(tally.failed),
                str(tally.skipped),
                str(tally.cases),
                f"{tally.seconds:.1f} s",
            )
        out.print(table)
    for failure in summary.failures:
        out.print(f"\n[red]FAILED[/] {escape(failure.nodeid)}")
        lines = failure.reason.strip().splitlines()
        shown = lines[-FAILURE_LINES:]
        if len(lines) > len(shown):
            out.print(f"  … {len(lines) - len(shown)} lines before", style="dim")
        for line in shown:
            out.print(f"  {escape(line)}", style="dim")
    total = sum(t.tests for by_layer in summary.tallies.values() for t in by_layer.values())
    verdict = "[green]conformance: pass[/]" if summary.ok else "[red]conformance: FAIL[/]"
    if summary.collected == 0:
        verdict = "[red]conformance: no contract tests were collected[/]"
    out.print(f"\n{verdict} — {total} tests in {summary.seconds:.1f} s")
