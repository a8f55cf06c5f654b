"""Contract authoring: `accord generate` and `accord lint`."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from harness.cli.common import (
    RootOption,
    err,
    load_project,
    out,
)
from harness.project import GenerateTarget

if TYPE_CHECKING:
    pass


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
    from harness.authoring import generate as generation

    project = load_project(root)
    started = time.perf_counter()

    def progress(target: GenerateTarget) -> None:
        err.print(f"  {target.contract.as_posix()} → {target.module.as_posix()}", style="dim")

    try:
        if check:
            drifts = generation.check(project, progress)
        else:
            results = generation.write(project, generation.expected_files(project, progress))
    except generation.GenerationError as error:
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


def lint(
    root: RootOption = None,
    files: Annotated[
        list[Path] | None,
        typer.Argument(help="Contract files to check (default: every file under contracts/)."),
    ] = None,
) -> None:
    """Validate the contracts: specifications, $refs, examples and the project's rules."""
    from harness.authoring.lint import lint_project

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


new_app = typer.Typer(help="Add a part to the project, in the layout of the others.")


@new_app.command("service")
def new_service(
    name: Annotated[
        str, typer.Argument(help="The service's name: its package services/NAME, settings NAME_*.")
    ],
    contract: Annotated[
        Path,
        typer.Option(
            "--contract",
            help="Its OpenAPI contract, in the project (e.g. contracts/openapi/NAME-service.yaml).",
            dir_okay=False,
        ),
    ],
    port: Annotated[
        int | None,
        typer.Option("--port", help="Its port under `accord up` (default: the next free one)."),
    ] = None,
    root: RootOption = None,
) -> None:
    """Scaffold a service from its contract: services/NAME (settings, app, main, and the
    generated interface implemented with 501s until written), its tests, its generated code,
    and its entries in pyproject.toml, which make it `accord serve NAME` and part of `accord up`.
    Nothing that exists is overwritten."""
    from harness.authoring import scaffold

    project = load_project(root)
    try:
        plan = scaffold.plan(project, name, contract, port)
    except scaffold.ScaffoldError as error:
        err.print(f"[red]error:[/] {escape(str(error))}")
        raise typer.Exit(2) from None
    scaffold.write(project, plan, lambda path: out.print(f"  created {path.as_posix()}"))
    out.print(
        f"The {name} service is scaffolded, on port {plan.service.port}.\n"
        f"  next: write services/{name}/api.py (each operation answers 501 until then), then\n"
        f"        `pytest tests/{name}`, `accord serve {name}`, `accord up`"
    )
