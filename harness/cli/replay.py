"""`accord replay FILE`: a recorded stream into a running stack, under adversity."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from harness.cli.common import RootOption
from harness.cli.evolution import OutputFormat

if TYPE_CHECKING:
    from harness.replay.live import ReplaySummary
    from harness.replay.runner import Progress as ReplayProgress


def replay(
    file: Annotated[
        Path,
        typer.Argument(
            help="A stream file: JSON lines as `accord up --record` writes them.",
            exists=True,
            dir_okay=False,
        ),
    ],
    duplicates: Annotated[
        int, typer.Option("--duplicates", min=1, help="Deliver each event K times.")
    ] = 1,
    shuffle: Annotated[
        bool, typer.Option("--shuffle", help="Publish the copies in a random order.")
    ] = False,
    crash_rate: Annotated[
        float,
        typer.Option(
            "--crash-rate",
            min=0.0,
            max=1.0,
            help="The share of deliveries (below 1) redelivered as after a crash between the "
            "consumer's effect and its acknowledgement.",
        ),
    ] = 0.0,
    endpoint: Annotated[
        str | None,
        typer.Option(
            "--endpoint",
            help="The stack's SNS/SQS endpoint (default: AWS_ENDPOINT_URL or "
            "LOCALSTACK_ENDPOINT, else that of the `accord up` running with --state).",
        ),
    ] = None,
    seed: Annotated[
        int | None, typer.Option("--seed", help="Replay the same schedule as an earlier run.")
    ] = None,
    prefix: Annotated[
        str, typer.Option("--prefix", help="The resource prefix `accord provision` used.")
    ] = "",
    compare: Annotated[
        bool,
        typer.Option(
            "--compare/--no-compare",
            help="Run a clean pass first and compare the final states (needs the stack's "
            "SQLite databases in .accord/).",
        ),
    ] = True,
    state: Annotated[
        Path | None,
        typer.Option(
            "--state",
            help="The stack's state directory (default: .accord/ in the project).",
            file_okay=False,
        ),
    ] = None,
    timeout: Annotated[
        float, typer.Option("--timeout", min=1.0, help="Seconds to wait for the queues to drain.")
    ] = 300.0,
    root: RootOption = None,
    output_format: Annotated[
        OutputFormat, typer.Option("--format", help="text for people, json for machines.")
    ] = OutputFormat.text,
) -> None:
    """Replay a recorded stream into a running stack (`accord up`) with duplicates, shuffling
    and crashes, then compare its final state with a clean delivery. Exit 1 on a difference or
    an event dead-lettered that was not invalid."""
    from botocore.exceptions import BotoCoreError, ClientError

    from harness.cli.common import bus_location, err, load_project
    from harness.replay.live import replay_file, stack_probes
    from harness.replay.schedule import Adversity, new_seed
    from services.kit.sqs import QueueNotFoundError

    try:
        adversity = Adversity(
            duplicates=duplicates,
            order="shuffled" if shuffle else "in-order",
            crash_rate=crash_rate,
            seed=seed if seed is not None else new_seed(),
        )
    except ValueError as error:  # out of range, though the options' bounds catch most
        err.print(f"[red]error:[/] {escape(str(error))}")
        raise typer.Exit(2) from None
    project = load_project(root)
    state = state if state is not None else project.root / ".accord"
    where = bus_location(endpoint, state).endpoint_url
    if where is None:  # ACCORD_ENV=production: replaying into real AWS is not what this is for
        err.print(
            "[red]error:[/] accord replay needs the SNS/SQS endpoint of a stack: pass --endpoint "
            "URL or start `accord up`"
        )
        raise typer.Exit(2)
    probes = stack_probes(state) if compare else []
    if compare and not probes:
        err.print(
            f"[yellow]note:[/] no service databases in {escape(str(state))}: final states are "
            "not compared (--no-compare to silence this)"
        )
    progress = Progress(
        TextColumn("[bold]replay[/] {task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=True,
    )
    task = progress.add_task("", total=None)

    def on_progress(step: ReplayProgress) -> None:
        progress.update(task, description=step.phase, completed=step.done, total=step.total)

    try:
        with progress:
            summary = asyncio.run(
                replay_file(
                    file,
                    project=project,
                    endpoint=where,
                    prefix=prefix,
                    adversity=adversity,
                    probes=probes,
                    on_progress=on_progress,
                    timeout=timeout,
                )
            )
    except ValueError as error:  # a bad line (StreamFormatError)
        err.print(f"[red]error:[/] {escape(str(error))}")
        raise typer.Exit(2) from None
    except TimeoutError as error:
        err.print(f"[red]error:[/] {escape(str(error))}")
        raise typer.Exit(1) from None
    except (BotoCoreError, ClientError, QueueNotFoundError) as error:
        err.print(f"[red]error:[/] the bus at {escape(where)}: {escape(str(error))}")
        raise typer.Exit(2) from None

    if output_format is OutputFormat.json:
        typer.echo(json.dumps(_as_json(summary), indent=2))
    else:
        _print_summary(summary, where)
    raise typer.Exit(0 if summary.ok else 1)


def _as_json(summary: ReplaySummary) -> dict[str, object]:
    return {
        "ok": summary.ok,
        "events": summary.events,
        "sent": summary.sent,
        "delivered": summary.delivered,
        "duplicatesAbsorbed": summary.duplicates_absorbed,
        "crashes": summary.crashes,
        "deadLettered": [
            {"messageId": letter.message_id, "reason": letter.reason}
            for letter in summary.dead_lettered
        ],
        "finalStateDiffs": None
        if summary.diffs is None
        else [str(difference) for difference in summary.diffs],
        "queues": list(summary.queues),
        "seconds": round(summary.seconds, 1),
        "seed": summary.seed,
    }


def _print_summary(summary: ReplaySummary, endpoint: str) -> None:
    from harness.cli.common import out
    from harness.replay.live import summary_details, summary_rows

    table = Table(title=f"replay into {escape(endpoint)}", title_justify="left", show_header=False)
    table.add_column("")
    table.add_column("", justify="right")
    for label, value in summary_rows(summary):
        table.add_row(label, escape(value))
    out.print(table)
    for line in summary_details(summary):
        out.print(f"  {escape(line)}")
    out.print("[green]replay: ok[/]" if summary.ok else "[red]replay: FAIL[/]")
