"""What every `accord` command shares: the `--root` and `--endpoint` options, the consoles
(`out` for results, `err` for errors and progress), the project a command works on, the bus it
talks to, and the command classes that keep `--help` plain.

Every command module of `harness.cli` imports this one; it imports none of them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from typer.core import TyperCommand, TyperGroup, TyperOption

from harness.project import Project, ProjectNotFoundError

if TYPE_CHECKING:
    from services.kit.aws import BusLocation

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)

RootOption = Annotated[
    Path | None,
    typer.Option(
        "--root",
        help="The project directory (default: the nearest parent with \\[tool.accord]).",
        file_okay=False,
        exists=True,
    ),
]
EndpointOption = Annotated[
    str | None,
    typer.Option(
        "--endpoint",
        help="SNS/SQS endpoint, e.g. http://127.0.0.1:4566 (default: AWS_ENDPOINT_URL or "
        "LOCALSTACK_ENDPOINT, else the running `accord up` of the project, else real AWS when "
        "ACCORD_ENV=production).",
    ),
]

PrefixOption = Annotated[
    str, typer.Option("--prefix", help="Prefix for every topic and queue name (isolation).")
]


def _without_type(options: Iterable[Any]) -> None:
    """A flag takes no value, so its help shows no type (typer would print `<bool>`)."""
    for option in options:
        if isinstance(option, TyperOption) and option.is_flag and option.metavar is None:
            option.metavar = ""


class AccordCommand(TyperCommand):
    """A command whose flags, `--help` included, are listed without a value type."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _without_type(self.params)

    def get_help_option(self, ctx: Any) -> TyperOption | None:
        option = super().get_help_option(ctx)
        _without_type([option])
        return option


class AccordGroup(TyperGroup):
    """A group of commands whose `--help` is listed without a value type."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _without_type(self.params)

    def get_help_option(self, ctx: Any) -> TyperOption | None:
        option = super().get_help_option(ctx)
        _without_type([option])
        return option


def use_accord_classes(app: typer.Typer) -> None:
    """Build `app`, its commands and its sub-apps with the classes above (call it once every
    command is registered)."""
    app.info.cls = AccordGroup
    for command in app.registered_commands:
        if command.cls in (None, TyperCommand):  # the default: no class of its own
            command.cls = AccordCommand
    for group in app.registered_groups:
        if group.typer_instance is not None:
            use_accord_classes(group.typer_instance)


class Service(StrEnum):
    """The services `accord serve` can run."""

    auth = "auth"
    user = "user"
    notification = "notification"


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
