"""The compat commands on a Typer app of their own, as harness/cli.py registers them."""

from __future__ import annotations

import typer

from harness.cli.evolution import diff, schemas_app

app = typer.Typer(no_args_is_help=True)
app.add_typer(schemas_app, name="schemas")
app.command("diff")(diff)
