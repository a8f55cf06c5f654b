"""The contract drives the user service's code: in a private copy of the project, an edit to
`contracts/openapi/user-service.yaml` followed by `accord generate` makes mypy name, in
`services/user/api.py`, what the service must now implement or change.

Each test runs `accord generate` and mypy (strict, with the project's configuration) on a copy,
so they take some seconds each (the first one longer, while mypy's cache of the third-party
libraries fills): they are kept to two, and share that cache."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from harness.cli import app as cli
from tests.conftest import REPOSITORY, edit

CONTRACT = "contracts/openapi/user-service.yaml"
IMPLEMENTATION = "services/user/api.py"
# What a copy of the project leaves out: the environment, history, state and caches.
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
)
ERROR = re.compile(r"^(?P<path>[^:\s]+):(?P<line>\d+): error: (?P<message>.*)$", re.MULTILINE)


@pytest.fixture(scope="module")
def mypy_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One mypy cache for the module's runs: the second one finds the libraries checked."""
    return tmp_path_factory.mktemp("mypy-cache")


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A copy of the whole project (contracts, generated code, services), free to change."""
    root = tmp_path / "project"
    shutil.copytree(REPOSITORY, root, ignore=LEFT_OUT)
    return root


def regenerate(root: Path) -> None:
    result = CliRunner().invoke(cli, ["generate", "--root", str(root)])
    assert result.exit_code == 0, result.output


def mypy_errors(root: Path, cache: Path, *files: str) -> list[tuple[str, int, str]]:
    """mypy's errors (path, line, message) on `files` of the copy at `root`, with the copy's
    configuration, and its packages, not the ones installed in development mode, on the path."""
    environment = {**os.environ, "MYPYPATH": str(root)}
    run = subprocess.run(
        [sys.executable, "-m", "mypy", "--cache-dir", str(cache), *files],
        cwd=root,
        env=environment,
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    assert run.returncode in (0, 1), run.stdout + run.stderr
    return [
        (found["path"], int(found["line"]), found["message"])
        for found in ERROR.finditer(run.stdout)
    ]


def line_of(path: Path, text: str) -> int:
    """The line (from 1) where `text`, which occurs once in the file, begins."""
    content = path.read_text(encoding="utf-8")
    assert content.count(text) == 1, f"{text!r} occurs {content.count(text)} times in {path}"
    return content[: content.index(text)].count("\n") + 1


def test_an_operation_added_to_the_contract_is_named_by_mypy_as_missing_from_the_user_api(
    project: Path, mypy_cache: Path
) -> None:
    edit(
        project / CONTRACT,
        "  /health/live:\n",
        "  /api/v1/users/{userId}/avatar:\n"
        "    parameters:\n"
        "      - $ref: '#/components/parameters/UserId'\n"
        "    delete:\n"
        "      operationId: deleteAvatar\n"
        "      summary: Delete a user's avatar\n"
        "      security:\n"
        "        - bearerAuth: [admin]\n"
        "      x-owner-parameter: userId\n"
        "      responses:\n"
        "        '204':\n"
        "          description: Deleted.\n"
        "  /health/live:\n",
    )
    regenerate(project)

    errors = mypy_errors(project, mypy_cache, IMPLEMENTATION)

    assert errors == [
        (
            IMPLEMENTATION,
            line_of(
                project / IMPLEMENTATION,
                "UserApi(deps, database_ready, deps.roles, metrics=metrics)",
            ),
            'Cannot instantiate abstract class "UserApi" with abstract attribute "delete_avatar"  '
            "[abstract]",
        )
    ]


def test_a_renamed_profile_property_is_named_by_mypy_where_the_user_api_builds_a_profile(
    project: Path, mypy_cache: Path
) -> None:
    contract = project / CONTRACT
    text = contract.read_text(encoding="utf-8")
    schema = text.index("\n    Profile:\n")
    # In the `Profile` schema only (the update request keeps its `displayName`).
    edit(
        contract,
        "      required: [id, email, displayName, firstName,",
        "      required: [id, email, name, firstName,",
    )
    text = contract.read_text(encoding="utf-8")
    renamed = text.index("        displayName:", schema)
    contract.write_text(
        text[:renamed] + "        name:" + text[renamed + len("        displayName:") :],
        encoding="utf-8",
    )
    regenerate(project)

    errors = mypy_errors(project, mypy_cache, IMPLEMENTATION)

    assert errors == [
        (
            IMPLEMENTATION,
            line_of(project / IMPLEMENTATION, "return api.Profile.model_construct("),
            'Unexpected keyword argument "displayName" for "model_construct" of "Profile"  '
            "[call-arg]",
        )
    ]
