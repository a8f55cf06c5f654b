"""The `accord` application: every command group of `harness.cli`, registered in the order
`accord --help` lists them. The commands live in one module per task; this module only
assembles them."""

from __future__ import annotations

import typer

from harness.cli.authoring import generate, lint, new_app
from harness.cli.bus import dlq_app, provision
from harness.cli.common import use_accord_classes
from harness.cli.conformance import verify
from harness.cli.deploy import deploy_app
from harness.cli.evolution import check, diff, schemas_app
from harness.cli.maintenance import keys_app, migrate, prune, roles_app
from harness.cli.mock import mock_app
from harness.cli.replay import replay
from harness.cli.stack import serve, up

app = typer.Typer(
    name="accord",
    help="Accord: contract-first services and the harness that proves they keep their contracts.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

app.command()(generate)
app.command()(lint)
app.add_typer(new_app, name="new")
app.command()(provision)
app.add_typer(dlq_app, name="dlq")
app.command()(serve)
app.add_typer(mock_app, name="mock")
app.command()(up)
app.add_typer(schemas_app, name="schemas")
app.command()(diff)
app.command()(check)
app.command()(verify)
app.command()(replay)
app.command()(migrate)
app.add_typer(roles_app, name="roles")
app.add_typer(keys_app, name="keys")
app.command()(prune)
app.add_typer(deploy_app, name="deploy")

use_accord_classes(app)  # last: every command is registered by now
