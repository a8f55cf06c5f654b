"""The architecture's import rules (ARCHITECTURE.md), checked on the source tree.

Each rule is a function of a `Project` (tests/layering.py), run here on the repository and, to
show that it can fail, on a tiny fake project in `tmp_path` that breaks it on purpose.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from functools import cache
from pathlib import Path

import pytest

from tests.layering import (
    Import,
    Layer,
    Project,
    Violation,
    ancestor_imports,
    forbidden,
    layer_violations,
    module_circles,
    package_circles,
    within,
)

REPOSITORY = Path(__file__).resolve().parents[2]
PACKAGES = ("generated", "services", "harness", "bench", "tests")

STANDARD_LIBRARY = frozenset(sys.stdlib_module_names)
TEST_LIBRARIES = frozenset({"pytest", "_pytest", "hypothesis", "schemathesis", "pact", "moto"})
FRAMEWORKS = frozenset(
    {
        "fastapi",
        "starlette",
        "sqlalchemy",
        "boto3",
        "botocore",
        "httpx",
        "pydantic_settings",
        "alembic",
        "uvicorn",
    }
)
SERVICE_CORE = ("domain", "ports", "handlers")  # services/<name>/<core>.py: plain Python

# The harness's layers (ARCHITECTURE.md, "The harness"), top first: a module may import its own
# layer and the layers below, never one above. A module is in the layer of the longest package
# listed that contains it; a harness module no layer lists may import anything but the top layer.
HARNESS_LAYERS = (
    Layer("command line", ("harness.cli",)),
    Layer("local stack", ("harness.stack",)),
    Layer(
        "tasks",
        (
            "harness.mock",
            "harness.conformance",
            "harness.evolution",
            "harness.maintenance",
            "harness.deploy",
        ),
    ),
    Layer("replay", ("harness.replay",)),
    Layer("bus", ("harness.bus",)),
    Layer("authoring", ("harness.authoring",)),
    Layer("project", ("harness.project",)),
)

Rule = Callable[[Project], list[Violation]]


# --- the rules ---------------------------------------------------------------------------------


# What a generated module may import besides pydantic, the standard library and `generated`:
# the routers (`server.py`) and what they share (`security.py`) the web framework, the typed
# clients (`client.py`) httpx.
GENERATED_EXTRAS = {
    "server": frozenset({"fastapi", "starlette"}),
    "security": frozenset({"fastapi", "starlette"}),
    "client": frozenset({"httpx"}),
}


def generated_rule(project: Project) -> list[Violation]:
    def forbids(imp: Import) -> str | None:
        if within(imp.imported, "services") or within(imp.imported, "harness"):
            return "generated imports no service and no harness"
        extras = GENERATED_EXTRAS.get(imp.importer.rsplit(".", 1)[-1], frozenset())
        if within(imp.imported, "generated") or imp.top in STANDARD_LIBRARY | {"pydantic"}:
            return None
        if imp.top in extras:
            return None
        if extras:
            allowed = ", ".join(sorted(extras))
            return (
                f"this generated module imports only {allowed}, pydantic and the standard library"
            )
        return "generated imports only pydantic and the standard library"

    return forbidden(project, lambda m: within(m, "generated"), forbids)


def service_of(module: str) -> str | None:
    """`auth` for `services.auth.domain`; None outside a service (kit counts as none)."""
    parts = module.split(".")
    if len(parts) < 2 or parts[0] != "services" or parts[1] == "kit":
        return None
    return parts[1]


def kit_rule(project: Project) -> list[Violation]:
    def forbids(imp: Import) -> str | None:
        if service_of(imp.imported) is not None:
            return "services.kit imports no service"
        if within(imp.imported, "harness"):
            return "services.kit imports no harness"
        if imp.top in TEST_LIBRARIES:
            return "services.kit imports no test library"
        return None

    return forbidden(project, lambda m: within(m, "services.kit"), forbids)


def service_rule(project: Project) -> list[Violation]:
    def forbids(imp: Import) -> str | None:
        other = service_of(imp.imported)
        if other is not None and other != service_of(imp.importer):
            return "a service imports no other service"
        if within(imp.imported, "harness"):
            return "a service imports no harness"
        if imp.top in TEST_LIBRARIES:
            return "a service imports no test library"
        return None

    return forbidden(project, lambda m: service_of(m) is not None, forbids)


def is_service_core(module: str) -> bool:
    parts = module.split(".")
    return service_of(module) is not None and len(parts) >= 3 and parts[2] in SERVICE_CORE


def core_rule(project: Project) -> list[Violation]:
    def forbids(imp: Import) -> str | None:
        if imp.top in FRAMEWORKS or (imp.internal and within(imp.imported, "generated")):
            return "domain, ports and handlers import no framework and no generated model"
        return None

    return forbidden(project, is_service_core, forbids)


def outside_tests_rule(project: Project) -> list[Violation]:
    def forbids(imp: Import) -> str | None:
        return "only tests import tests" if within(imp.imported, "tests") else None

    return forbidden(project, lambda m: not within(m, "tests"), forbids)


def harness_circle_rule(project: Project) -> list[Violation]:
    return module_circles(project, "harness")


def harness_package_circle_rule(project: Project) -> list[Violation]:
    return package_circles(project, "harness")


def harness_ancestor_rule(project: Project) -> list[Violation]:
    return ancestor_imports(project, "harness")


def harness_layer_rule(project: Project) -> list[Violation]:
    return layer_violations(project, HARNESS_LAYERS, "harness")


@cache
def repository() -> Project:
    return Project.scan(REPOSITORY, PACKAGES)


def explain(violations: list[Violation]) -> str:
    return "\n".join(["", *map(str, violations)])


# --- on the repository -------------------------------------------------------------------------


def test_generated_imports_only_pydantic_and_the_standard_library() -> None:
    violations = generated_rule(repository())
    assert not violations, explain(violations)


def test_the_kit_imports_no_service_no_harness_and_no_test_library() -> None:
    violations = kit_rule(repository())
    assert not violations, explain(violations)


def test_a_service_imports_no_other_service_no_harness_and_no_test_library() -> None:
    violations = service_rule(repository())
    assert not violations, explain(violations)


def test_domain_ports_and_handlers_import_no_framework() -> None:
    violations = core_rule(repository())
    assert not violations, explain(violations)


def test_nothing_outside_tests_imports_tests() -> None:
    violations = outside_tests_rule(repository())
    assert not violations, explain(violations)


def test_the_harness_has_no_import_circle() -> None:
    violations = harness_circle_rule(repository())
    assert not violations, explain(violations)


def test_the_harness_sub_packages_import_each_other_without_a_circle() -> None:
    violations = harness_package_circle_rule(repository())
    assert not violations, explain(violations)


def test_no_harness_module_imports_its_own_ancestor_package() -> None:
    violations = harness_ancestor_rule(repository())
    assert not violations, explain(violations)


def test_harness_modules_import_only_their_own_layer_and_the_layers_below() -> None:
    violations = harness_layer_rule(repository())
    assert not violations, explain(violations)


def test_every_harness_module_has_a_layer() -> None:
    project = repository()
    listed = [package for layer in HARNESS_LAYERS for package in layer.packages]
    unplaced = [
        module
        for module in project.modules
        if within(module, "harness")
        and module != "harness"
        and not any(within(module, package) for package in listed)
    ]
    assert not unplaced, f"add these to HARNESS_LAYERS (and ARCHITECTURE.md): {unplaced}"


def test_the_rules_see_every_package_of_the_repository() -> None:
    project = repository()
    for package in PACKAGES:
        assert any(within(m, package) and m != package for m in project.modules), package
    assert any(imp.imported == "pydantic" for imp in project.imports)


# --- on a fake project that breaks each rule ---------------------------------------------------

FAKE_PROJECT = {
    "generated/__init__.py": "",
    "generated/models.py": "import json\nimport httpx\nfrom pydantic import BaseModel\n",
    "generated/user/__init__.py": "",
    "generated/user/server.py": "import fastapi\nfrom starlette.requests import Request\n",
    "generated/user/client.py": "import httpx\nimport fastapi\nfrom services.kit import bus\n",
    "services/__init__.py": "",
    "services/kit/__init__.py": "",
    "services/kit/bus.py": "import boto3\nfrom services.auth import domain\n",
    "services/auth/__init__.py": "",
    "services/auth/domain.py": "import uuid\n\nfrom fastapi import FastAPI\n",
    "services/auth/handlers.py": (
        "from services.kit import bus\nfrom services.auth.domain import X\nfrom ..user import api\n"
    ),
    "services/user/__init__.py": "",
    "services/user/api.py": "import fastapi\n",
    "services/user/migrations/versions/0001_initial.py": "import alembic\nimport services.auth\n",
    "bench/__init__.py": "",
    "bench/speed.py": "from tests.factories import make\n",
    "tests/__init__.py": "",
    "tests/factories.py": "import pytest\nfrom services.auth import domain\n",
    "harness/__init__.py": "",
    "harness/cli/__init__.py": "",
    "harness/cli/main.py": "from harness.stack import up\n",
    "harness/stack/__init__.py": "RUNNING = True\n",
    "harness/stack/up.py": "from . import RUNNING, down\n",
    "harness/stack/down.py": "def stop() -> None:\n    from harness.stack.up import RUNNING\n",
    "harness/stack/faults.py": "from .. import bus\n",
    "harness/bus/__init__.py": "",
    "harness/bus/sns.py": (
        "from typing import TYPE_CHECKING\n\n"
        "if TYPE_CHECKING:\n"
        "    from harness.stack import faults\n"
    ),
    "harness/maintenance.py": "import harness.cli.main as cli\n",
    "harness/tools.py": "from harness.cli import main\n",
}


@pytest.fixture
def fake(tmp_path: Path) -> Project:
    for name, text in FAKE_PROJECT.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return Project.scan(tmp_path, PACKAGES)


def lines(rule: Rule, project: Project) -> list[str]:
    return [str(v) for v in rule(project)]


def test_generated_models_importing_httpx_and_a_client_importing_fastapi_are_reported(
    fake: Project,
) -> None:
    assert lines(generated_rule, fake) == [
        "generated.models (generated/models.py:2) imports httpx: "
        "generated imports only pydantic and the standard library",
        "generated.user.client (generated/user/client.py:2) imports fastapi: "
        "this generated module imports only httpx, pydantic and the standard library",
        "generated.user.client (generated/user/client.py:3) imports services.kit.bus: "
        "generated imports no service and no harness",
    ]


def test_the_kit_importing_a_service_is_reported(fake: Project) -> None:
    assert lines(kit_rule, fake) == [
        "services.kit.bus (services/kit/bus.py:2) imports services.auth.domain: "
        "services.kit imports no service"
    ]


def test_a_service_importing_another_service_is_reported(fake: Project) -> None:
    assert lines(service_rule, fake) == [
        "services.auth.handlers (services/auth/handlers.py:3) imports services.user.api: "
        "a service imports no other service"
    ]


def test_a_domain_importing_fastapi_is_reported(fake: Project) -> None:
    assert lines(core_rule, fake) == [
        "services.auth.domain (services/auth/domain.py:3) imports fastapi: "
        "domain, ports and handlers import no framework and no generated model"
    ]


def test_a_bench_importing_tests_is_reported(fake: Project) -> None:
    assert lines(outside_tests_rule, fake) == [
        "bench.speed (bench/speed.py:1) imports tests.factories: only tests import tests"
    ]


def test_a_circle_through_an_import_inside_a_function_is_reported(fake: Project) -> None:
    assert lines(harness_circle_rule, fake) == [
        "harness.stack.down (harness/stack/down.py:2) imports harness.stack.up: "
        "import circle (harness.stack.down ↔ harness.stack.up)",
        "harness.stack.up (harness/stack/up.py:1) imports harness.stack.down: "
        "import circle (harness.stack.down ↔ harness.stack.up)",
    ]


def test_a_circle_between_sub_packages_through_type_checking_is_reported(fake: Project) -> None:
    circle = "import circle between sub-packages (harness.bus ↔ harness.stack)"
    assert lines(harness_package_circle_rule, fake) == [
        f"harness.bus.sns (harness/bus/sns.py:4) imports harness.stack.faults: {circle}",
        f"harness.stack.faults (harness/stack/faults.py:1) imports harness.bus: {circle}",
    ]


def test_a_module_importing_its_parent_package_is_reported(fake: Project) -> None:
    assert lines(harness_ancestor_rule, fake) == [
        "harness.stack.up (harness/stack/up.py:1) imports harness.stack: "
        "imports the __init__ of its own ancestor package",
    ]


def test_a_lower_layer_importing_a_higher_one_is_reported(fake: Project) -> None:
    assert lines(harness_layer_rule, fake) == [
        "harness.bus.sns (harness/bus/sns.py:4) imports harness.stack.faults: "
        "layer 'bus' imports the higher layer 'local stack'",
        "harness.maintenance (harness/maintenance.py:1) imports harness.cli.main: "
        "layer 'tasks' imports the higher layer 'command line'",
        "harness.tools (harness/tools.py:1) imports harness.cli.main: "
        "a module in no layer imports the top layer 'command line'",
    ]


def test_imports_resolve_to_the_longest_project_module(fake: Project) -> None:
    imported = {(imp.importer, imp.imported) for imp in fake.imports}

    assert ("services.auth.handlers", "services.kit.bus") in imported  # a submodule
    assert ("services.auth.handlers", "services.auth.domain") in imported  # a name in it
    assert ("harness.stack.up", "harness.stack.down") in imported  # `from . import down`
    assert ("harness.stack.faults", "harness.bus") in imported  # `from .. import bus`
    assert ("generated.models", "pydantic") in imported
    assert not any(within(m, "services.user.migrations.versions") for m in fake.modules)


@pytest.mark.parametrize(
    "rule",
    [generated_rule, kit_rule, service_rule, core_rule, outside_tests_rule, harness_layer_rule],
)
def test_a_project_that_keeps_the_rules_has_no_violation(tmp_path: Path, rule: Rule) -> None:
    for name, text in {
        "generated/__init__.py": "",
        "generated/models.py": "import enum\nfrom pydantic import BaseModel\n",
        "services/__init__.py": "",
        "services/kit/__init__.py": "import fastapi\n",
        "services/auth/__init__.py": "",
        "services/auth/domain.py": "import uuid\n",
        "services/auth/api.py": "from fastapi import FastAPI\nfrom services.kit import http\n",
        "services/kit/http.py": "",
        "harness/__init__.py": "",
        "harness/cli/__init__.py": "from harness.stack import up\n",
        "harness/stack/__init__.py": "",
        "harness/stack/up.py": "from harness.stack import down\nimport services.auth.api\n",
        "tests/__init__.py": "",
        "tests/test_auth.py": "import pytest\nimport services.auth.domain\nimport tests\n",
    }.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")

    assert rule(Project.scan(tmp_path, PACKAGES)) == []
