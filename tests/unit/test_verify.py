"""`accord verify` on a small project of its own: it runs only the contract tests, counts them
per service and layer (with the cases a test records), names each failure, and exits 1 on
one."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from harness.cli import app

runner = CliRunner()

PYPROJECT = """\
[tool.accord]

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
    assert (services["user"]["pact"]["ok"], services["user"]["pact"]["failed"]) == (False, 1)
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
    for heading in ("auth", "user", "notification", "schemathesis", "RBAC", "pacts", "FAIL"):
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
