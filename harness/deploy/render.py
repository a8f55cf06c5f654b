"""`accord deploy render`: one renderer per `--format`, and the drift check of a committed
rendering (`--check`). A format is one entry of `FORMATS`: a function from the project, its
services and the name prefix to text, and where the project keeps the rendering."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from harness.bus.provision import topology_from_contracts
from harness.deploy import alerts, cloudformation
from harness.deploy.envtable import env_tables, readme_tables
from harness.deploy.services import Service, service_buses
from harness.project import Project

Renderer = Callable[[Project, tuple[Service, ...], str], str]


class RenderError(ValueError):
    """The format is unknown, or a rendering cannot be checked."""


@dataclass(frozen=True)
class Format:
    """One `--format`: how to render it and where the project commits the rendering."""

    name: str
    render: Renderer
    # The committed rendering (relative to the root), and how to read it from that file's text
    # (None: the file holds no rendering).
    committed: str
    read: Callable[[str], str | None]
    # How to bring the committed rendering up to date (`{command}` is the render command).
    fix: str


# How to bring a rendering up to date that fills a whole file (`--out FILE --check`).
WHOLE_FILE_FIX = "run `{command} --out {path}` and commit it"


def render_cloudformation(project: Project, services: tuple[Service, ...], prefix: str) -> str:
    """The bus topology of `accord provision`, the services' policies and the alarms."""
    topology = topology_from_contracts(project)
    template = cloudformation.build_template(topology, service_buses(services, topology), prefix)
    return cloudformation.render(template)


def render_prometheus_rules(project: Project, services: tuple[Service, ...], prefix: str) -> str:
    """The alerting rules over the services' `/metrics`: the consumed queues (as `accord
    provision` names them, `prefix` first), the publishers' outboxes, every service's 5xx."""
    topology = topology_from_contracts(project)
    rules = alerts.build_rules(
        tuple(service.name for service in services),
        service_buses(services, topology),
        topology,
        prefix,
    )
    return alerts.render(rules)


def render_env_table(project: Project, services: tuple[Service, ...], prefix: str) -> str:
    """The services' environment variables (`prefix` names no variable)."""
    return env_tables(services)


FORMATS = {
    "cloudformation": Format(
        "cloudformation",
        render_cloudformation,
        "deploy/cloudformation.json",
        lambda text: text,
        WHOLE_FILE_FIX,
    ),
    "prometheus-rules": Format(
        "prometheus-rules",
        render_prometheus_rules,
        "deploy/prometheus-rules.yml",
        lambda text: text,
        WHOLE_FILE_FIX,
    ),
    "env-table": Format(
        "env-table",
        render_env_table,
        "README.md",
        readme_tables,
        "run `{command}` and put its output between the markers in {path}",
    ),
}


def format_named(name: str) -> Format:
    """The format called `name`; `RenderError` naming the formats there are."""
    try:
        return FORMATS[name]
    except KeyError:
        raise RenderError(f"unknown format {name!r}; one of {', '.join(FORMATS)}") from None


def render(project: Project, services: tuple[Service, ...], name: str, prefix: str = "") -> str:
    return format_named(name).render(project, services, prefix)


def drift(
    project: Project,
    services: tuple[Service, ...],
    name: str,
    *,
    prefix: str = "",
    path: Path | None = None,
) -> str | None:
    """None when the committed rendering (`path`, else the format's file) is what the format
    renders now; otherwise one line naming the file and the command that fixes it."""
    chosen = format_named(name)
    target = path if path is not None else project.root / chosen.committed
    command = "accord deploy render" + (f" --format {name}" if name != "cloudformation" else "")
    command += f" --prefix {prefix}" if prefix else ""
    fix = (chosen.fix if path is None else WHOLE_FILE_FIX).format(
        command=command, path=project.relative(target)
    )
    try:
        text = target.read_text(encoding="utf-8")
    except FileNotFoundError:
        return f"{project.relative(target)} does not exist: {fix}"
    committed = chosen.read(text) if path is None else text
    if committed is None:
        return f"{project.relative(target)} holds no {name} rendering: {fix}"
    if committed != chosen.render(project, services, prefix):
        return f"{project.relative(target)} differs from what the contracts render: {fix}"
    return None
