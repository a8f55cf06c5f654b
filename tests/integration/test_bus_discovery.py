"""With `accord up` running, every command that needs the bus finds it by itself, from the
stack's `.accord/stack.json`, as `accord replay` always did: `accord provision`, `accord dlq`,
`accord replay` and `accord schemas publish --registry glue`; `--endpoint` and
`AWS_ENDPOINT_URL` still win."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from harness.cli import app
from harness.project import Project

pytestmark = pytest.mark.emulator
runner = CliRunner()
NOWHERE = "http://127.0.0.1:9"  # nothing listens: a command that goes there fails


@pytest.fixture
def no_bus_in_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_ENDPOINT_URL", "LOCALSTACK_ENDPOINT", "ACCORD_ENV"):
        monkeypatch.delenv(name, raising=False)


def running_stack(project: Project, endpoint: str) -> None:
    """What `accord up` writes once it is ready, as the process running these tests."""
    state = project.root / ".accord"
    state.mkdir(exist_ok=True)
    aws = {"endpoint": endpoint, "region": "us-east-1"}
    (state / "stack.json").write_text(json.dumps({"aws": aws, "pid": os.getpid()}))


@pytest.mark.usefixtures("no_bus_in_the_environment")
def test_provision_and_dlq_find_the_running_stack_by_themselves(
    project_copy: Project,
    moto_endpoint: str,
    unique_prefix: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    running_stack(project_copy, moto_endpoint)
    root = ["--root", str(project_copy.root)]
    queue = f"{unique_prefix}accord-user-service"

    provisioned = runner.invoke(app, ["provision", *root, "--prefix", unique_prefix])
    listed = runner.invoke(app, ["dlq", "list", queue, *root])
    redriven = runner.invoke(app, ["dlq", "redrive", queue, *root])
    monkeypatch.chdir(project_copy.root / "contracts")  # inside the project, no --root
    shown = runner.invoke(app, ["dlq", "show", queue, "no-such-message"])

    assert provisioned.exit_code == 0, provisioned.output
    assert f"provisioning {moto_endpoint}" in provisioned.output
    assert listed.exit_code == 0, listed.output
    assert f"{queue}-dlq is empty" in listed.output
    assert redriven.exit_code == 0, redriven.output
    assert f"moved 0 messages from {queue}-dlq" in redriven.output
    assert shown.exit_code == 1
    assert "no message no-such-message in the dead-letter queue" in shown.output


@pytest.mark.usefixtures("no_bus_in_the_environment")
def test_the_endpoint_option_and_the_environment_win_over_the_running_stack(
    project_copy: Project,
    moto_endpoint: str,
    unique_prefix: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    running_stack(project_copy, NOWHERE)
    root = ["--root", str(project_copy.root), "--prefix", unique_prefix]

    by_option = runner.invoke(app, ["provision", *root, "--endpoint", moto_endpoint])
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    by_environment = runner.invoke(app, ["provision", *root])

    assert by_option.exit_code == 0, by_option.output
    assert by_environment.exit_code == 0, by_environment.output
    assert f"provisioning {moto_endpoint}" in by_environment.output
    assert "nothing to change" in by_environment.output


@pytest.mark.usefixtures("no_bus_in_the_environment")
def test_without_a_running_stack_a_bus_command_says_how_to_name_the_bus(
    project_copy: Project,
) -> None:
    result = runner.invoke(
        app, ["dlq", "list", "accord-user-service", "--root", str(project_copy.root)]
    )

    assert result.exit_code == 2
    assert "no `accord up` is running for this project" in result.stderr
    assert "--endpoint URL" in result.stderr
    assert "Traceback" not in result.output


@pytest.mark.usefixtures("no_bus_in_the_environment")
def test_replay_finds_the_running_stack_by_itself(
    project_copy: Project, moto_endpoint: str, unique_prefix: str, tmp_path: Path
) -> None:
    running_stack(project_copy, moto_endpoint)
    root = ["--root", str(project_copy.root)]
    assert runner.invoke(app, ["provision", *root, "--prefix", unique_prefix]).exit_code == 0
    stream = tmp_path / "run.jsonl"
    stream.write_text("")

    result = runner.invoke(
        app,
        ["replay", str(stream), *root, "--prefix", unique_prefix, "--no-compare"],
        env={"COLUMNS": "200"},
    )

    assert result.exit_code == 0, result.output
    assert f"replay into {moto_endpoint}" in result.stdout


@pytest.mark.usefixtures("no_bus_in_the_environment")
def test_schemas_publish_to_glue_finds_the_running_stack_by_itself(
    project_copy: Project, moto_endpoint: str, unique_prefix: str
) -> None:
    running_stack(project_copy, moto_endpoint)
    registry = f"{unique_prefix}events"

    result = runner.invoke(
        app,
        [
            "schemas",
            "publish",
            "--root",
            str(project_copy.root),
            "--registry",
            "glue",
            "--glue-registry",
            registry,
        ],
    )

    assert result.exit_code == 0, result.output
    assert f"mirroring the catalog to Glue registry {registry}" in result.output
