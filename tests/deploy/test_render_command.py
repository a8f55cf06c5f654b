"""`accord deploy render`: the committed template and the README's variables are what the
project renders, `--check` catches a binding changed without re-rendering, and a wrong
`--format` is one line naming the formats."""

from __future__ import annotations

import json
import shutil

import pytest
from typer.testing import CliRunner

from harness.cli import app
from harness.deploy.envtable import env_tables, readme_tables
from harness.deploy.render import FORMATS
from harness.deploy.services import platform_services
from harness.project import Project
from tests.conftest import REPOSITORY, edit

runner = CliRunner()
TEMPLATE = "deploy/cloudformation.json"


def deploy(project: Project, *args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, ["deploy", "render", "--root", str(project.root), *args])
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def copy(project_copy: Project) -> Project:
    """A private copy of the project with its committed template."""
    shutil.copytree(REPOSITORY / "deploy", project_copy.root / "deploy")
    return project_copy


def test_the_committed_template_is_what_the_contracts_render(repository: Project) -> None:
    code, stdout, stderr = deploy(repository, "--check")

    assert (code, stderr) == (0, "")
    assert "matches the contracts" in stdout


def test_render_prints_the_template_on_standard_output(repository: Project) -> None:
    code, stdout, _ = deploy(repository)

    assert code == 0
    assert stdout == (REPOSITORY / TEMPLATE).read_text(encoding="utf-8")
    assert json.loads(stdout)["Resources"]


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("maxReceiveCount: 5", "maxReceiveCount: 8"),
        (
            "eventType: [user.created, user.deactivated]",
            "eventType: [user.created, user.deactivated, user.email.verification.requested]",
        ),
    ],
    ids=["max-receive-count", "filter-policy"],
)
def test_check_fails_when_a_binding_changes_until_the_template_is_rendered_again(
    copy: Project, old: str, new: str
) -> None:
    assert deploy(copy, "--check")[0] == 0
    edit(copy.contracts_dir / "asyncapi" / "user-service.yaml", old, new)

    code, stdout, stderr = deploy(copy, "--check")

    assert code == 1
    assert stdout == ""
    assert stderr.splitlines() == [
        f"drift: {TEMPLATE} differs from what the contracts render: run "
        f"`accord deploy render --out {TEMPLATE}` and commit it"
    ]
    assert deploy(copy, "--out", str(copy.root / TEMPLATE))[0] == 0
    assert deploy(copy, "--check")[0] == 0


def test_check_names_the_command_when_the_template_is_missing(copy: Project) -> None:
    (copy.root / TEMPLATE).unlink()

    code, _, stderr = deploy(copy, "--check")

    assert code == 1
    assert stderr.splitlines() == [
        f"drift: {TEMPLATE} does not exist: run `accord deploy render --out {TEMPLATE}` "
        "and commit it"
    ]


def test_an_unknown_format_is_refused_in_one_line_naming_the_formats(
    repository: Project,
) -> None:
    code, stdout, stderr = deploy(repository, "--format", "terraform")

    assert code == 2
    assert stdout == ""
    assert stderr.splitlines() == [
        f"error: --format: unknown format 'terraform'; one of {', '.join(FORMATS)}"
    ]


def test_the_readme_lists_the_environment_variables_the_settings_classes_read(
    repository: Project,
) -> None:
    readme = (REPOSITORY / "README.md").read_text(encoding="utf-8")

    assert readme_tables(readme) == env_tables(platform_services(repository))
    code, _, stderr = deploy(repository, "--format", "env-table", "--check")
    assert (code, stderr) == (0, "")


def test_the_variable_table_names_every_setting_of_every_service(repository: Project) -> None:
    tables = env_tables(platform_services(repository))

    for variable in ("AUTH_EVENT_TOPIC", "USER_QUEUE", "NOTIFICATION_SMTP_TLS", "ACCORD_ENV"):
        assert f"| `{variable}` |" in tables
    assert "| `NOTIFICATION_SMTP_TLS` | one of `none`, `starttls`, `tls` | `none` |" in tables
    assert "| `USER_AUTH_SERVICE_RETRIES` | integer from 0 to 5 | `2` |" in tables
