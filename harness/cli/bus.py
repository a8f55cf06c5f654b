"""Bus operations: `accord provision` and `accord dlq list|show|redrive`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from harness.cli.common import (
    EndpointOption,
    PrefixOption,
    RootOption,
    bus_location,
    err,
    find_project,
    load_project,
    out,
    stack_state,
)

if TYPE_CHECKING:
    from harness.bus.dlq import DeadLetterQueue


def provision(
    root: RootOption = None, endpoint: EndpointOption = None, prefix: PrefixOption = ""
) -> None:
    """Create the topics, queues, DLQs and subscriptions the AsyncAPI bindings declare."""
    from botocore.exceptions import BotoCoreError, ClientError

    from harness.bus.provision import Change, Provisioner, TopologyError, topology_from_contracts

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
QueueArgument = Annotated[
    str, typer.Argument(help="The consumer's queue, e.g. accord-user-service.")
]


def open_dead_letter_queue(queue: str, endpoint: str | None, root: Path | None) -> DeadLetterQueue:
    from botocore.exceptions import BotoCoreError, ClientError

    from harness.bus.dlq import DeadLetterQueue
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
