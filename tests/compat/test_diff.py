"""`accord diff --base REF` on a temporary git repository holding a copy of the contracts."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from harness.project import Project
from tests.compat.cli import app
from tests.compat.events import add_property, require, set_version
from tests.conftest import edit

runner = CliRunner()
GET_PROFILE = "GET /api/v1/users/{userId}"
CREATE_ADDRESS = "POST /api/v1/users/{userId}/addresses"


def git(root: Path, *args: str) -> None:
    subprocess.run(
        [
            "git",
            "-C",
            str(root),
            "-c",
            "user.name=Accord tests",
            "-c",
            "user.email=t@example.com",
            "-c",
            "commit.gpgsign=false",
            *args,
        ],
        check=True,
        capture_output=True,
    )


@pytest.fixture
def repo(project_copy: Project) -> Project:
    """The project copy as a git repository with one commit, tagged `base`."""
    git(project_copy.root, "init", "-q")
    git(project_copy.root, "add", "-A")
    git(project_copy.root, "commit", "-q", "-m", "contracts")
    git(project_copy.root, "tag", "base")
    return project_copy


def diff(project: Project, *args: str) -> Result:
    return runner.invoke(app, ["diff", "--base", "base", "--root", str(project.root), *args])


def changes(project: Project) -> tuple[int, list[dict[str, Any]]]:
    result = diff(project, "--format", "json")
    report = json.loads(result.stdout)
    return result.exit_code, report["changes"]


def user_service(project: Project) -> Path:
    return project.contracts_dir / "openapi" / "user-service.yaml"


PROFILE_REQUIRED = (
    "      required: [id, email, displayName, firstName, lastName, phone, status, createdAt, "
    "updatedAt]\n"
)
PROFILE_DISPLAY_NAME = """        displayName:
          type: [string, 'null']
          minLength: 1
          maxLength: 100
          pattern: '^[^\\x00]*$'
          description: The name to show to others.
          examples: [Ada Lovelace]
        firstName:
          type: [string, 'null']
          minLength: 1
          maxLength: 100
          pattern: '^[^\\x00]*$'
          examples: [Ada]
        lastName:
          type: [string, 'null']
          minLength: 1
          maxLength: 100
          pattern: '^[^\\x00]*$'
          examples: [Lovelace]
        phone:
          type: [string, 'null']
          pattern: '^\\+[1-9][0-9]{6,14}$'
          description: A phone number in E.164 form.
          examples: ['+447700900123']
        status:"""


def remove_profile_display_name(project: Project) -> None:
    path = user_service(project)
    edit(path, PROFILE_REQUIRED, PROFILE_REQUIRED.replace("displayName, ", ""))
    edit(path, PROFILE_DISPLAY_NAME, PROFILE_DISPLAY_NAME.split("\n", 7)[7])


CREATE_ADDRESS_PROPERTIES = """      description: The body of `createAddress`.
      additionalProperties: false
      required: [label, line1, city, postalCode, country]
      properties:
"""


def add_address_nickname(project: Project, *, required: bool = False) -> None:
    text = CREATE_ADDRESS_PROPERTIES + "        nickname:\n          type: string\n"
    if required:
        text = text.replace("country]", "country, nickname]")
    edit(user_service(project), CREATE_ADDRESS_PROPERTIES, text)


def test_a_removed_response_property_is_breaking(repo: Project) -> None:
    remove_profile_display_name(repo)

    code, found = changes(repo)

    assert code == 1
    assert {
        "document": "contracts/openapi/user-service.yaml",
        "subject": GET_PROFILE,
        "rule": "property-removed",
        "severity": "breaking",
        "pointer": "/components/schemas/Profile/properties/displayName",
        "message": "a response property was removed; clients that read it lose it",
    } in found


def test_an_added_optional_request_property_is_not_breaking(repo: Project) -> None:
    add_address_nickname(repo)

    code, found = changes(repo)

    assert code == 0
    assert [(c["subject"], c["rule"], c["severity"], c["pointer"]) for c in found] == [
        (
            CREATE_ADDRESS,
            "property-added",
            "non-breaking",
            "/components/schemas/CreateAddressRequest/properties/nickname",
        )
    ]


def test_an_added_required_request_property_is_breaking(repo: Project) -> None:
    add_address_nickname(repo, required=True)

    code, found = changes(repo)

    assert code == 1
    assert (CREATE_ADDRESS, "required-added", "breaking") in {
        (c["subject"], c["rule"], c["severity"]) for c in found
    }


def test_an_added_optional_response_property_is_not_breaking(repo: Project) -> None:
    edit(
        user_service(repo),
        "        status:\n          $ref: '#/components/schemas/ProfileStatus'\n",
        "        status:\n          $ref: '#/components/schemas/ProfileStatus'\n"
        "        pronouns:\n          type: string\n",
    )

    code, found = changes(repo)

    assert code == 0
    assert {c["rule"] for c in found} == {"property-added"}


def test_a_widened_response_enum_is_breaking(repo: Project) -> None:
    edit(
        user_service(repo),
        "      enum: [active, deactivated]\n",
        "      enum: [active, deactivated, suspended]\n",
    )

    code, found = changes(repo)

    assert code == 1
    assert (GET_PROFILE, "enum-value-added", "breaking") in {
        (c["subject"], c["rule"], c["severity"]) for c in found
    }


def test_a_narrowed_request_type_is_breaking(repo: Project) -> None:
    edit(
        user_service(repo),
        "      minProperties: 1\n      properties:\n        displayName:\n"
        "          type: [string, 'null']\n",
        "      minProperties: 1\n      properties:\n        displayName:\n          type: string\n",
    )

    code, found = changes(repo)

    assert code == 1
    assert {(c["subject"], c["rule"], c["severity"], c["pointer"]) for c in found} == {
        (
            "PATCH /api/v1/users/{userId}",
            "type-narrowed",
            "breaking",
            "/components/schemas/UpdateProfileRequest/properties/displayName/type",
        )
    }


def test_a_removed_operation_is_breaking_and_an_added_one_is_not(repo: Project) -> None:
    path = repo.contracts_dir / "openapi" / "auth-service.yaml"
    edit(path, "  /api/v1/auth/me:\n", "  /api/v1/auth/whoami:\n")

    code, found = changes(repo)

    assert code == 1
    assert {(c["subject"], c["rule"], c["severity"]) for c in found} == {
        ("GET /api/v1/auth/me", "operation-removed", "breaking"),
        ("GET /api/v1/auth/whoami", "operation-added", "non-breaking"),
    }


def test_a_role_added_to_an_operation_is_breaking(repo: Project) -> None:
    path = repo.contracts_dir / "openapi" / "auth-service.yaml"
    text = path.read_text()
    start = text.index("  /api/v1/auth/me:\n")
    head, tail = text[:start], text[start:]
    path.write_text(
        head + tail.replace("        - bearerAuth: []\n", "        - bearerAuth: [admin]\n", 1)
    )

    code, found = changes(repo)

    assert code == 1
    (change,) = found
    assert (change["rule"], change["severity"]) == ("security-tightened", "breaking")
    assert "roles added: admin" in change["message"]


def test_a_removed_status_is_breaking_whether_success_or_error(repo: Project) -> None:
    # Issue 17 changed this rule: a client branches on every documented status (the roles
    # clients on 404), so removing an error status breaks it too (docs/compatibility.md).
    path = repo.contracts_dir / "openapi" / "auth-service.yaml"
    text = path.read_text()
    start = text.index("  /api/v1/auth/register:\n")
    section = text[start : text.index("  /api/v1/auth/login:\n")]
    changed = section.replace("        '201':", "        '200':").replace(
        "        '409':\n", "        '418':\n"
    )
    path.write_text(text.replace(section, changed))

    code, found = changes(repo)

    assert code == 1
    removed = {c["message"]: c["severity"] for c in found if c["rule"] == "response-status-removed"}
    assert removed == {
        "response 201 is no longer documented (200 is); clients that handle 201 get another "
        "status": "breaking",
        "response 409 is no longer documented (418 is); clients that handle 409 branch on it "
        "no more": "breaking",
    }


def test_an_event_change_that_breaks_its_mode_without_a_major_bump_is_reported(
    repo: Project,
) -> None:
    add_property(repo, "displayName")
    require(repo, "displayName")
    set_version(repo, "1.0.0", "1.1.0")

    code, found = changes(repo)

    assert code == 1
    rules = {(c["subject"], c["rule"], c["severity"]) for c in found}
    assert ("user.created", "required-added", "breaking") in rules
    assert ("user.created", "major-bump-missing", "breaking") in rules


def test_a_compatible_event_change_with_a_minor_bump_is_not_breaking(repo: Project) -> None:
    add_property(repo, "displayName")
    set_version(repo, "1.0.0", "1.1.0")

    code, found = changes(repo)

    assert code == 0
    assert all(c["severity"] == "non-breaking" for c in found)


def test_an_event_schema_changed_without_a_version_bump_is_reported(repo: Project) -> None:
    add_property(repo, "displayName")

    code, found = changes(repo)

    assert code == 1
    assert [c["rule"] for c in found if c["severity"] == "breaking"] == ["version-not-bumped"]


def test_new_and_deleted_documents_are_reported_as_such(repo: Project) -> None:
    openapi = repo.contracts_dir / "openapi"
    shutil.copy(openapi / "notification-service.yaml", openapi / "billing-service.yaml")
    (openapi / "notification-service.yaml").unlink()

    code, found = changes(repo)

    assert code == 1
    assert {(c["document"], c["rule"], c["severity"]) for c in found} == {
        ("contracts/openapi/billing-service.yaml", "document-added", "non-breaking"),
        ("contracts/openapi/notification-service.yaml", "document-removed", "breaking"),
    }


def test_the_text_report_lists_each_change_with_its_severity(repo: Project) -> None:
    remove_profile_display_name(repo)
    add_address_nickname(repo)

    result = diff(repo)

    assert result.exit_code == 1
    assert "contracts/openapi/user-service.yaml" in result.output
    assert f"breaking {GET_PROFILE} property-removed" in result.output
    assert f"non-breaking {CREATE_ADDRESS} property-added" in result.output
    assert "breaking, 1 non-breaking change" in result.output


def test_no_change_since_the_base_exits_zero(repo: Project) -> None:
    result = diff(repo)

    assert result.exit_code == 0, result.output
    assert "no changes to the contracts since base" in result.output


def test_an_unknown_base_is_a_clear_error(repo: Project) -> None:
    result = runner.invoke(app, ["diff", "--base", "no-such-ref", "--root", str(repo.root)])

    assert result.exit_code == 2
    assert "'no-such-ref' is not a commit" in result.output
