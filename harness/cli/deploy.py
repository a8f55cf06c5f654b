"""Production deployment: `accord deploy render`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from harness.cli.common import PrefixOption, RootOption, err, load_project, out

deploy_app = typer.Typer(
    help="Render what a production deployment needs from the contracts.", no_args_is_help=True
)


@deploy_app.command("render")
def render(
    root: RootOption = None,
    output_format: Annotated[
        str,
        typer.Option(
            "--format",
            metavar="<name>",
            help="cloudformation: the bus, IAM policies and alarms as a CloudFormation template "
            "(committed as deploy/cloudformation.json); prometheus-rules: the alerting rules "
            "over the services' /metrics (committed as deploy/prometheus-rules.yml); env-table: "
            "the services' environment variables as Markdown (committed in README.md).",
        ),
    ] = "cloudformation",
    out_file: Annotated[
        Path | None,
        typer.Option(
            "--out",
            metavar="<file>",
            help="Write the rendering to this file (default: standard output).",
            dir_okay=False,
        ),
    ] = None,
    prefix: PrefixOption = "",
    check: Annotated[
        bool,
        typer.Option(
            "--check",
            help="Write nothing; exit 1 if the committed rendering (or --out) differs from a "
            "fresh one.",
        ),
    ] = False,
) -> None:
    """Render a deployment artifact from the contracts: a CloudFormation template of the bus
    that `accord provision` creates, the Prometheus alerting rules, or the services'
    environment variables."""
    from harness.bus.provision import TopologyError
    from harness.deploy import render as rendering
    from harness.deploy.envtable import EnvTableError
    from harness.deploy.services import platform_services

    try:
        rendering.format_named(output_format)
    except rendering.RenderError as error:
        err.print(f"[red]error:[/] --format: {escape(str(error))}")
        raise typer.Exit(2) from None
    project = load_project(root)
    services = platform_services(project)
    try:
        if check:
            problem = rendering.drift(
                project, services, output_format, prefix=prefix, path=out_file
            )
        else:
            text = rendering.render(project, services, output_format, prefix)
    except (TopologyError, EnvTableError, rendering.RenderError) as error:
        err.print(f"[red]error:[/] {escape(str(error))}")
        raise typer.Exit(2) from None
    if check:
        if problem is not None:
            err.print(f"[red]drift:[/] {escape(problem)}")
            raise typer.Exit(1)
        out.print(f"the committed {output_format} rendering matches the contracts")
        return
    if out_file is None:
        out.out(text, end="", highlight=False)
        return
    out_file.parent.mkdir(parents=True, exist_ok=True)
    out_file.write_text(text, encoding="utf-8")
    err.print(f"wrote {escape(project.relative(out_file))}")
