"""What every `accord` command shares: the `--root` and `--endpoint` options, and the command
classes that keep `--help` plain.

This module imports nothing of the harness, so harness/cli.py and the harness/cli_*.py modules
it registers can all import it at import time.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperCommand, TyperGroup, TyperOption

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
