"""`accord new service`: in a private copy of the project, a new contract becomes a service that
generates, type-checks, passes its own tests, and is served by `accord serve` and `accord up`;
and the command refuses, having changed nothing, whatever is in its way."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from harness.cli import app as cli
from harness.project import Project
from tests.conftest import REPOSITORY
from tests.e2e.support import free_ports, port_flags, stack_ports

CONTRACT = "contracts/openapi/greeter-service.yaml"
# The least a contract can be for the generator: one secured operation with a problem
# response, and one public operation.
MINIMAL_CONTRACT = """\
openapi: 3.1.0
info:
  title: Accord greeter service
  version: 1.0.0
  description: A service with two operations.
paths:
  /api/v1/greetings/{name}:
    get:
      operationId: getGreeting
      summary: A greeting for a name
      security:
        - bearerAuth: []
      parameters:
        - name: name
          in: path
          required: true
          schema:
            type: string
            maxLength: 40
      responses:
        '200':
          description: The greeting.
          content:
            application/json:
              schema:
                $ref: '#/components/schemas/Greeting'
        '401':
          description: No valid access token.
          content:
            application/problem+json:
              schema:
                $ref: '#/components/schemas/Problem'
  /api/v1/ping:
    get:
      operationId: ping
      summary: Whether the service answers
      security: []
      responses:
        '204':
          description: It does.
components:
  securitySchemes:
    bearerAuth:
      type: http
      scheme: bearer
  schemas:
    Greeting:
      type: object
      required: [text]
      properties:
        text:
          type: string
    Problem:
      type: object
      required: [type, title, status]
      properties:
        type:
          type: string
        title:
          type: string
        status:
          type: integer
        detail:
          type: string
"""
LEFT_OUT = shutil.ignore_patterns(
    ".venv",
    ".git",
    ".accord",
    ".mypy_cache",
    ".pytest_cache",
    ".ruff_cache",
    ".hypothesis",
    "__pycache__",
    "*.egg-info",
    "node_modules",
)
CREATED = [
    "generated/greeter/__init__.py",
    "generated/greeter/client.py",
    "generated/greeter/models.py",
    "generated/greeter/server.py",
    "services/greeter/__init__.py",
    "services/greeter/api.py",
    "services/greeter/app.py",
    "services/greeter/main.py",
    "services/greeter/settings.py",
    "tests/greeter/__init__.py",
    "tests/greeter/test_api.py",
    "pyproject.toml",
]


@pytest.fixture(scope="module")
def copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the whole project with the minimal contract, not yet scaffolded."""
    root = tmp_path_factory.mktemp("new-service") / "project"
    shutil.copytree(REPOSITORY, root, ignore=LEFT_OUT)
    (root / CONTRACT).write_text(MINIMAL_CONTRACT, encoding="utf-8")
    return root


@pytest.fixture(scope="module")
def scaffolded(copy: Path) -> tuple[Path, str]:
    """The copy after `accord new service greeter`, and what the command printed."""
    result = CliRunner().invoke(
        cli, ["new", "service", "greeter", "--contract", CONTRACT, "--root", str(copy)]
    )
    assert result.exit_code == 0, result.output
    return copy, result.output


def in_copy(root: Path, *command: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """`command` run in the copy, with the copy's packages (not the installed ones) first."""
    environment = {**os.environ, "PYTHONPATH": str(root), "MYPYPATH": str(root)}
    return subprocess.run(
        command, cwd=root, env=environment, capture_output=True, text=True, timeout=timeout
    )


def accord(root: Path, *arguments: str) -> list[str]:
    """The `accord` command of the copy."""
    program = "import sys; from harness.cli import app; sys.argv[0] = 'accord'; app()"
    return [sys.executable, "-c", program, *arguments]


def test_new_service_says_what_it_created_and_registers_the_service(
    scaffolded: tuple[Path, str],
) -> None:
    root, output = scaffolded

    assert [line.split()[1] for line in output.splitlines() if "created" in line] == CREATED
    project = Project.load(root)
    greeter = project.service("greeter")
    assert (greeter.port, greeter.openapi.as_posix(), greeter.asyncapi) == (3004, CONTRACT, None)
    assert [t.module.as_posix() for t in project.targets if t.contract.as_posix() == CONTRACT] == [
        "generated/greeter/models.py"
    ]
    assert "port 3004" in output


def test_the_scaffolded_service_generates_type_checks_lints_and_passes_its_tests(
    scaffolded: tuple[Path, str],
) -> None:
    root, _ = scaffolded
    code = ["services/greeter", "tests/greeter"]

    generate = in_copy(root, *accord(root, "generate", "--check", "--root", str(root)))
    mypy = in_copy(root, sys.executable, "-m", "mypy", "--no-incremental", *code)
    ruff = in_copy(root, sys.executable, "-m", "ruff", "check", *code)
    formatted = in_copy(root, sys.executable, "-m", "ruff", "format", "--check", *code)
    tests = in_copy(
        root, sys.executable, "-m", "pytest", "-q", "-n", "0", "-p", "no:cacheprovider", code[1]
    )

    assert generate.returncode == 0, generate.stdout + generate.stderr
    assert mypy.returncode == 0, mypy.stdout + mypy.stderr
    assert ruff.returncode == 0, ruff.stdout
    assert formatted.returncode == 0, formatted.stdout
    assert tests.returncode == 0, tests.stdout + tests.stderr
    assert "5 passed" in tests.stdout


def test_an_operation_not_written_answers_501_with_a_problem_under_accord_up(
    scaffolded: tuple[Path, str], tmp_path: Path
) -> None:
    root, _ = scaffolded
    ports = dict(zip([*stack_ports(), "greeter"], free_ports(len(stack_ports()) + 1), strict=True))
    greeter = ports["greeter"]
    log = tmp_path / "up.log"
    environment = {**os.environ, "PYTHONPATH": str(root), "ACCORD_ENV": "local"}
    with log.open("wb") as output:
        process = subprocess.Popen(
            accord(root, "up", "--root", str(root), *port_flags(ports)),
            cwd=root,
            env=environment,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 120
            while "ready in" not in log.read_text():
                assert process.poll() is None, log.read_text()
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.2)
            url = f"http://127.0.0.1:{greeter}"
            ping = httpx.get(f"{url}/api/v1/ping")
            greeting = httpx.get(f"{url}/api/v1/greetings/ada")
            docs = httpx.get(f"{url}/docs/events")
            stack = json.loads((root / ".accord" / "stack.json").read_text())
        finally:
            process.send_signal(signal.SIGINT)
            process.wait(60)

    assert f"✓ greeter service on {url}" in log.read_text()
    assert stack["services"]["greeter"]["url"] == url
    assert ping.status_code == 501
    assert ping.headers["content-type"] == "application/problem+json"
    assert ping.json()["detail"] == "ping is not written yet."
    assert greeting.status_code == 401  # the contract's security, before the implementation
    assert "sends and receives no events" in docs.text


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["greeter", "--contract", CONTRACT], "a service called 'greeter' exists already"),
        (["user", "--contract", CONTRACT], "a service called 'user' exists already"),
        (["Greeter2", "--contract", CONTRACT], "'Greeter2' cannot name a service"),
        (["kit", "--contract", CONTRACT], "a service called 'kit' exists already"),
        (["other", "--contract", "contracts/asyncapi/user-events.yaml"], "not an OpenAPI"),
        (["other", "--contract", "contracts/openapi/none.yaml"], "no such file"),
        (["other", "--contract", CONTRACT, "--port", "3001"], "port 3001 is the auth service's"),
        (["other", "--contract", CONTRACT], "is generated for another service already"),
    ],
    ids=["twice", "existing", "bad name", "kit", "asyncapi", "missing", "port", "contract"],
)
def test_new_service_refuses_what_is_in_its_way_and_changes_nothing(
    scaffolded: tuple[Path, str], arguments: list[str], message: str
) -> None:
    root, _ = scaffolded
    before = snapshot(root)

    result = CliRunner().invoke(cli, ["new", "service", *arguments, "--root", str(root)])

    assert result.exit_code == 2, result.output
    assert message in " ".join(result.output.split()), result.output
    assert snapshot(root) == before


def test_new_service_refuses_a_package_that_exists_although_no_entry_names_it(
    copy: Path, tmp_path: Path
) -> None:
    root = tmp_path / "project"
    shutil.copytree(copy, root, ignore=LEFT_OUT)
    (root / "services" / "reports").mkdir()
    (root / "contracts/openapi/reports.yaml").write_text(MINIMAL_CONTRACT, encoding="utf-8")
    before = snapshot(root)

    result = CliRunner().invoke(
        cli,
        [
            *("new", "service", "reports", "--contract", "contracts/openapi/reports.yaml"),
            *("--root", str(root)),
        ],
    )

    assert result.exit_code == 2, result.output
    assert "services/reports exists already; nothing was created" in result.output
    assert snapshot(root) == before


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file of the project's own parts, with its content."""
    return {
        path.relative_to(root).as_posix(): path.read_bytes()
        for part in ("pyproject.toml", "services", "tests", "generated", "contracts")
        for path in ([root / part] if (root / part).is_file() else (root / part).rglob("*"))
        if path.is_file() and "__pycache__" not in path.parts
    }
