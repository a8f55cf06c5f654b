"""`accord verify` on a small project of its own: it runs only the contract tests, counts them
per service and layer (with the cases a test records), names each failure, and exits 1 on
one."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import textwrap
import tomllib
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from typer.testing import CliRunner

from harness.cli import app
from harness.cli.conformance import LAYER_TITLES
from harness.conformance.verify import LAYERS, TEST_DEPENDENCIES, layer_name
from tests.conftest import REPOSITORY

runner = CliRunner()

PYPROJECT = """\
[tool.accord]

# The services `--service` names and the tables list, in this order.
[[tool.accord.service]]
name = "auth"
port = 3001
openapi = "contracts/openapi/auth-service.yaml"

[[tool.accord.service]]
name = "user"
port = 3002
openapi = "contracts/openapi/user-service.yaml"

[[tool.accord.service]]
name = "notification"
port = 3003
openapi = "contracts/openapi/notification-service.yaml"

[tool.pytest.ini_options]
addopts = "--strict-markers -ra"
markers = [
    "contract: conformance",
    "conformance(service, layer): where accord verify counts it",
]
"""

TESTS = """\
import pytest


@pytest.mark.contract
@pytest.mark.conformance("auth", "schemathesis")
def test_many_cases_pass(record_property):
    record_property("cases", 42)


@pytest.fixture
def counted(record_property):
    yield
    record_property("cases", 8)  # as a fixture counts requests, after the test


@pytest.mark.contract
@pytest.mark.conformance("auth", "schemathesis")
def test_cases_counted_by_a_fixture(counted):
    pass


@pytest.mark.contract
@pytest.mark.conformance("user", "schemathesis")
def test_a_tear_down_that_fails(request):
    request.addfinalizer(lambda: (_ for _ in ()).throw(RuntimeError("tear-down broke")))


@pytest.mark.contract
@pytest.mark.conformance("auth", "rbac")
@pytest.mark.parametrize("role", ["user", "admin"])
def test_each_role_passes(role):
    assert role


@pytest.mark.contract
@pytest.mark.conformance("user", "pact")
def test_a_broken_pact():
    assert {"roles": ["user"]} == {"roles": ["admin"]}, "the provider renamed a role"


def test_not_part_of_the_conformance_suite():
    raise AssertionError("accord verify must not run this")
"""

UNMARKED = """\
import pytest

pytestmark = pytest.mark.contract


def test_counted_under_its_directory():
    pass
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "pyproject.toml").write_text(PYPROJECT)
    tests = tmp_path / "tests"
    (tests / "notification").mkdir(parents=True)
    (tests / "test_conformance.py").write_text(textwrap.dedent(TESTS))
    (tests / "notification" / "test_other.py").write_text(UNMARKED)
    return tmp_path


def verify_json(project: Path, *options: str) -> tuple[int, dict[str, Any]]:
    result = runner.invoke(app, ["verify", "--root", str(project), "--format", "json", *options])
    return result.exit_code, json.loads(result.stdout)


def test_verify_counts_each_service_and_layer_and_fails_naming_the_broken_test(
    project: Path,
) -> None:
    exit_code, report = verify_json(project)

    assert exit_code == 1
    assert report["ok"] is False
    services = report["services"]
    assert services["auth"]["schemathesis"] | {"seconds": 0} == {
        "ok": True,
        "passed": 2,
        "failed": 0,
        "skipped": 0,
        "cases": 50,
        "seconds": 0,
    }
    assert (services["auth"]["rbac"]["passed"], services["auth"]["rbac"]["cases"]) == (2, 2)
    # The marker says "pact", the name before "pacts": counted under the one name.
    assert (services["user"]["pacts"]["ok"], services["user"]["pacts"]["failed"]) == (False, 1)
    assert services["notification"]["other"]["passed"] == 1
    assert services["user"]["schemathesis"]["failed"] == 1
    assert [failure["nodeid"] for failure in report["failures"]] == [
        "tests/test_conformance.py::test_a_tear_down_that_fails",
        "tests/test_conformance.py::test_a_broken_pact",
    ]
    assert "tear-down broke" in report["failures"][0]["reason"]
    assert "the provider renamed a role" in report["failures"][1]["reason"]


def test_verify_passes_when_the_chosen_layers_pass(project: Path) -> None:
    exit_code, report = verify_json(
        project, "--service", "auth", "--layer", "schemathesis", "--layer", "rbac"
    )

    assert exit_code == 0
    assert report["ok"] is True
    assert list(report["services"]) == ["auth"]


def test_verify_prints_a_table_per_service_with_the_counts(project: Path) -> None:
    result = runner.invoke(app, ["verify", "--root", str(project)])

    assert result.exit_code == 1
    for heading in ("auth", "user", "notification", "schemathesis", "rbac", "pacts", "FAIL"):
        assert heading in result.stdout
    assert "FAILED tests/test_conformance.py::test_a_broken_pact" in result.stdout
    assert "conformance: FAIL — 7 tests" in result.stdout


def test_verify_with_nothing_to_run_fails(project: Path) -> None:
    exit_code, report = verify_json(project, "--service", "notification", "--layer", "pact")

    assert exit_code == 1
    assert report["services"] == {}


def test_an_unknown_layer_is_refused_naming_it(project: Path) -> None:
    result = runner.invoke(app, ["verify", "--root", str(project), "--layer", "smoke"])

    assert result.exit_code == 2
    assert "--layer: unknown smoke" in result.stderr


def test_a_service_the_project_does_not_register_is_refused_naming_those_it_does(
    project: Path,
) -> None:
    result = runner.invoke(app, ["verify", "--root", str(project), "--service", "gateway"])

    assert result.exit_code == 2
    assert "--service: unknown gateway; one of auth, user, notification" in result.stderr


def test_a_layer_is_named_as_the_table_prints_it_or_as_before() -> None:
    spellings = {
        "pacts": "pacts",
        "pact": "pacts",
        "schemathesis": "schemathesis",
        "contract-code": "contract-code",
        "contract ↔ code": "contract-code",
        "rbac": "rbac",
        "RBAC": "rbac",
        "smoke": None,
    }

    assert {spelling: layer_name(spelling) for spelling in spellings} == spellings
    assert [LAYER_TITLES[layer] for layer in LAYERS] == list(LAYERS)


def test_verify_runs_the_layer_named_by_its_earlier_name_and_counts_it_under_the_new_one(
    project: Path,
) -> None:
    exit_code, report = verify_json(project, "--service", "user", "--layer", "pact")

    assert exit_code == 1
    assert list(report["services"]["user"]) == ["pacts"]
    assert report["services"]["user"]["pacts"]["failed"] == 1


def test_the_help_and_the_refusal_of_a_layer_list_the_names_the_table_prints(
    project: Path,
) -> None:
    refused = runner.invoke(app, ["verify", "--root", str(project), "--layer", "pactz"])
    shown = runner.invoke(app, ["verify", "--help"], env={"COLUMNS": "200"})

    names = "pacts, schemathesis, contract-code, rbac"
    assert refused.exit_code == 2
    assert f"--layer: unknown pactz; one of {names}" in refused.stderr
    assert names in shown.stdout


def test_verify_without_its_test_libraries_says_what_to_install_and_exits_2(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(TEST_DEPENDENCIES, "accord_test_no_such_module", "no-such-distribution")

    result = runner.invoke(app, ["verify", "--root", str(project)])

    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) <= 2, result.stderr
    assert "no-such-distribution" in lines[0]
    assert "python3 -m pip install -e '.[dev]'" in lines[-1]
    assert "Traceback" not in result.output
    assert result.stdout == ""


# Blocks the suite's test libraries, as in an environment made by `pip install -e .` alone.
BLOCK_TEST_LIBRARIES = """\
import importlib.abc
import sys

BLOCKED = {"pytest", "_pytest", "pytest_asyncio", "pact", "schemathesis", "hypothesis"}


class Blocker(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


sys.meta_path.insert(0, Blocker())
"""


def test_verify_in_an_environment_without_pytest_names_the_install_command_without_a_traceback(
    project: Path, tmp_path: Path
) -> None:
    blocker = tmp_path / "blocker"
    blocker.mkdir()
    (blocker / "sitecustomize.py").write_text(BLOCK_TEST_LIBRARIES)
    env = {**os.environ, "PYTHONPATH": str(blocker)}
    command = [sys.executable, "-c", "from harness.cli import app; app()"]

    result = subprocess.run(
        [*command, "verify", "--root", str(project)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 2, result.stderr
    assert "pytest, pytest-asyncio, pact-python, schemathesis, hypothesis" in result.stderr
    assert "python3 -m pip install -e '.[dev]'" in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) <= 2


def _requirement_names(requirements: list[str]) -> set[str]:
    return {canonicalize_name(Requirement(text).name) for text in requirements}


def test_the_test_libraries_verify_checks_for_are_in_the_dev_extra() -> None:
    pyproject = tomllib.loads((REPOSITORY / "pyproject.toml").read_text())
    dev = _requirement_names(pyproject["project"]["optional-dependencies"]["dev"])

    assert {canonicalize_name(name) for name in TEST_DEPENDENCIES.values()} <= dev


def _installed_by(requirements: list[str]) -> set[str]:
    """The distributions `pip install` of `requirements` brings in, extras followed."""
    wanted = [Requirement(text) for text in requirements]
    found: set[str] = set()
    while wanted:
        requirement = wanted.pop()
        name = canonicalize_name(requirement.name)
        extras = {"", *requirement.extras}
        if name in found and not requirement.extras:
            continue
        found.add(name)
        try:
            requires = metadata.requires(requirement.name) or []
        except metadata.PackageNotFoundError:
            continue
        for text in requires:
            child = Requirement(text)
            if child.marker is None or any(child.marker.evaluate({"extra": e}) for e in extras):
                wanted.append(child)
    return found


def test_every_library_the_conformance_suite_imports_is_installed_by_the_project_or_checked() -> (
    None
):
    pyproject = tomllib.loads((REPOSITORY / "pyproject.toml").read_text())
    provided = _installed_by(pyproject["project"]["dependencies"])
    checked = {canonicalize_name(name) for name in TEST_DEPENDENCIES.values()}
    distributions = metadata.packages_distributions()
    suite = [
        *(REPOSITORY / "tests" / "contract").rglob("*.py"),
        REPOSITORY / "tests" / "conftest.py",
        REPOSITORY / "harness" / "conformance" / "fixtures.py",
        REPOSITORY / "harness" / "conformance" / "plugin.py",
    ]
    modules = {
        name.partition(".")[0]
        for path in suite
        for node in ast.walk(ast.parse(path.read_text()))
        for name in (
            [alias.name for alias in node.names]
            if isinstance(node, ast.Import)
            else [node.module or ""]
            if isinstance(node, ast.ImportFrom) and node.level == 0
            else []
        )
    }
    own = {"harness", "services", "generated", "tests", ""}
    third_party = sorted(modules - set(sys.stdlib_module_names) - own)

    unaccounted = [
        module
        for module in third_party
        if not any(
            canonicalize_name(d) in provided | checked for d in distributions.get(module, [])
        )
    ]

    assert third_party, "the suite imports no third-party library: the scan is broken"
    assert unaccounted == []
